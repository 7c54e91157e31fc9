"""Checks on a trained adapter, each with the MLflow run it describes one click away."""

from __future__ import annotations

import math

import dagster as dg

from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.train.outputs import TrainedAdapter
from forge_pipeline.train.plan import mlflow_run_url


def mlflow_link(forge: ForgeSettingsResource, run_id: str | None, experiment_id: str | None) -> dict:
    if not run_id or not experiment_id:
        return {}
    return {"mlflow_run": dg.MetadataValue.url(mlflow_run_url(forge.get().train.mlflow_ui_url, experiment_id, run_id))}


@dg.asset_check(asset="lora_adapter")
def lora_adapter_loss_fell(forge: ForgeSettingsResource, lora_adapter: TrainedAdapter) -> dg.AssetCheckResult:
    """Training made progress: the last logged train loss is below the first, and the validation loss is finite.
    A warning, not a block: adapter_evaluation's gate decides what is served."""
    metrics = lora_adapter.metrics
    first, final, held_out = metrics.get("first_loss"), metrics.get("final_loss"), metrics.get("eval_loss")
    fell = first is not None and final is not None and final < first
    finite = held_out is None or math.isfinite(held_out)
    return dg.AssetCheckResult(
        passed=bool(fell and finite),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "first_loss": first if first is not None else float("nan"),
            "final_loss": final if final is not None else float("nan"),
            "eval_loss": held_out if held_out is not None else float("nan"),
            "global_step": metrics.get("global_step", 0),
            **mlflow_link(forge, lora_adapter.mlflow_run_id, lora_adapter.mlflow_experiment_id),
        },
    )
