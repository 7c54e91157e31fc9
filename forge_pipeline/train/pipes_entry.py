"""The training subprocess launched by the `lora_adapter` asset through Dagster Pipes.

Run as `python -m forge_pipeline.train.pipes_entry` by `dg.PipesSubprocessClient`; its parameters arrive as
Pipes extras: dataset_dir, base_model_dir, output_dir, hp (TrainSettings as a dict), tracking_uri, experiment,
dataset_version, base_model_name, is_demo_model, run_tags (the Dagster run id and URL for the MLflow run), parent
(a taught run's version to continue, train/teach.py).
Progress is streamed back as Pipes log lines a person reads ("step 4/28 (14%) loss 2.31 312 tok/s ETA 1m20s")
and the result, with the progress summary, as the asset materialization's metadata.
"""

from __future__ import annotations

import os

from forge_pipeline.train.orphan_guard import exit_with_parent


def main() -> None:
    exit_with_parent()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dagster_pipes import open_dagster_pipes

    from forge_pipeline.durations import format_duration
    from forge_pipeline.train.config import TrainSettings
    from forge_pipeline.train.sft import train_lora
    from forge_pipeline.train.tracking import format_progress

    with open_dagster_pipes() as pipes:
        extras = pipes.extras
        hp = TrainSettings.model_validate(extras["hp"])

        last: dict = {}

        def progress(entry: dict) -> None:
            if "step" in entry:
                last.update(entry)
            pipes.log.info(format_progress(entry))

        result = train_lora(
            extras["dataset_dir"],
            extras["base_model_dir"],
            extras["output_dir"],
            hp,
            extras["tracking_uri"],
            extras.get("experiment", "forge"),
            progress=progress,
            dataset_version=extras.get("dataset_version"),
            base_model_name=extras.get("base_model_name"),
            is_demo_model=bool(extras.get("is_demo_model")),
            run_tags=extras.get("run_tags"),
            parent=extras.get("parent"),
        )
        metrics = {k: v for k, v in result["metrics"].items() if v is not None}
        pipes.report_asset_materialization(
            metadata={
                "mlflow_run_id": result["mlflow_run_id"],
                "adapter_dir": {"raw_value": result["adapter_dir"], "type": "path"},
                "run_key": result["run_key"],
                "resumed_from": result.get("resumed_from") or "",
                # A taught run: "v0003 + 2 new examples x3, 8 replayed"; empty for a run from the base.
                "continued_from": _taught(result.get("continued_from"), hp),
                "reused_finished_run": bool(result.get("reused")),
                # The last progress line, so the materialization says how far and how fast training went.
                "progress": format_progress(last) if last else "reused: no training in this run",
                "training_time": format_duration(metrics["wall_s"]) if "wall_s" in metrics else "",
                **metrics,
            }
        )


def _taught(continued: dict | None, hp) -> str:
    if not continued:
        return ""
    return (
        f"{continued['version']} + {continued['new']} new example(s) x{hp.teach_repeats}, "
        f"{continued['replayed']} replayed"
    )


if __name__ == "__main__":
    main()
