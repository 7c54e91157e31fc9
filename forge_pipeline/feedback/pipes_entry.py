"""The DPO subprocess launched by the `preference_adapter` asset through Dagster Pipes (like SFT's pipes_entry).

Extras: rows_path (JSONL of trl preference rows), sft (the lora_adapter result), output_dir, feedback
(FeedbackSettings as a dict), tracking_uri, experiment, pairs_version.
"""

from __future__ import annotations

import json
import os

from forge_pipeline.train.orphan_guard import exit_with_parent


def main() -> None:
    exit_with_parent()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dagster_pipes import open_dagster_pipes

    from forge_pipeline.feedback.config import FeedbackSettings
    from forge_pipeline.feedback.dpo import train_preference_adapter

    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        with open(extras["rows_path"], encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        result = train_preference_adapter(
            rows,
            extras["sft"],
            extras["output_dir"],
            FeedbackSettings.model_validate(extras["feedback"]),
            extras["tracking_uri"],
            extras.get("experiment", "forge"),
            progress=lambda entry: pipes.log.info(json.dumps(entry, default=str)),
            pairs_version=extras.get("pairs_version"),
        )
        pipes.report_asset_materialization(
            metadata={
                "trained": True,
                "mlflow_run_id": result["mlflow_run_id"],
                "run_key": result["run_key"],
                "adapter_dir": {"raw_value": result["adapter_dir"], "type": "path"},
                "reused_finished_run": bool(result.get("reused")),
                **{k: v for k, v in result["metrics"].items() if v is not None},
            }
        )


if __name__ == "__main__":
    main()
