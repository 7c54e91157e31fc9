"""adapter_evaluation: the trained adapter against its base on the held-out split, and the promotion gate."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.defs.common import table_preview
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.defs.train.checks import mlflow_link
from forge_pipeline.export import evaluate, publish, steps
from forge_pipeline.export.handoff import Evaluation
from forge_pipeline.train.outputs import TrainedAdapter


@dg.asset(kinds={"pytorch", "mlflow"}, code_version="1")
def adapter_evaluation(
    forge: ForgeSettingsResource, lora_adapter: TrainedAdapter, dataset_version: DatasetVersion
) -> dg.MaterializeResult:
    """Base vs fine-tuned on the held-out (validation) split: loss and perplexity on assistant tokens, greedy
    answers side by side (eval prompts + held-out prompts, one table row per prompt), and the promotion gate on
    held-out loss with the eval.min_relative_improvement margin (a failed gate keeps the version unpromoted)."""
    settings = forge.get()
    info = publish.adapter_info(lora_adapter)
    result = steps.evaluation(settings, info, dataset_version)  # the same step the DPO candidate runs
    knowing = result["knowledge"]
    quality = {f"{side}_{k}": v for side in ("base", "tuned") for k, v in result[f"{side}_quality"].items()}
    return dg.MaterializeResult(
        value=Evaluation.model_validate({**result, "dataset_version": info.dataset_version or dataset_version.version}),
        metadata={
            "base_loss": result["base_loss"],
            "tuned_loss": result["tuned_loss"],
            "base_perplexity": result["base_perplexity"],
            "tuned_perplexity": result["tuned_perplexity"],
            "relative_improvement": result["relative_improvement"],
            "promoted": result["promoted"],
            "gate": result["reason"],
            "loss_gate_passed": result["loss_gate_passed"],
            "quality_gate_passed": result["quality_gate_passed"],
            # Questions from the person's notes, scored on the note's key terms (export/knowledge.py).
            **{f"knowledge_{k}": v for k, v in knowing.items() if k != "rows" and v is not None},
            # What a person notices in the answers (export/answer_quality.py), base beside tuned.
            **{k: v for k, v in quality.items() if v is not None},
            "gate_margin": result["min_relative_improvement"],
            "perplexity_change": result["perplexity_change"],
            "validation_examples": result["validation_examples"],
            "dagster/row_count": result["prompts"],  # one row per prompt in the side-by-side table
            "validation_tokens": result["validation_tokens"],
            "side_by_side_prompts": result["prompts"],
            "mean_seconds_base": result["mean_seconds_base"],
            "mean_seconds_tuned": result["mean_seconds_tuned"],
            # One row per prompt, answers shortened to fit a dialog (the full table is the run's MLflow artifact
            # evaluation/side_by_side.json).
            "side_by_side": table_preview(
                pl.DataFrame(evaluate.generations_table(result["generations"])),
                ["prompt_id", "prompt", "base", "tuned", "tuned_marks", "reference"],
                rows=len(result["generations"]),
                width=100,
            ),
            "mlflow_logged": result["mlflow_logged"],
            "is_demo_model": info.is_demo_model,
        },
    )


@dg.asset_check(asset=adapter_evaluation, additional_ins={"lora_adapter": dg.AssetIn("lora_adapter")})
def adapter_evaluation_gate(
    forge: ForgeSettingsResource, adapter_evaluation: Evaluation, lora_adapter: TrainedAdapter
) -> dg.AssetCheckResult:
    """The tuned adapter beats the base on held-out loss by eval.min_relative_improvement (the promotion gate).
    A warning: a version that fails is still exported and published, just not made current."""
    return dg.AssetCheckResult(
        passed=adapter_evaluation.promoted,
        severity=dg.AssetCheckSeverity.WARN,
        description=adapter_evaluation.reason or None,
        metadata={
            "base_loss": adapter_evaluation.base_loss,
            "tuned_loss": adapter_evaluation.tuned_loss,
            "relative_improvement": adapter_evaluation.relative_improvement,
            "required": adapter_evaluation.min_relative_improvement,
            **mlflow_link(forge, lora_adapter.mlflow_run_id, lora_adapter.mlflow_experiment_id),
        },
    )
