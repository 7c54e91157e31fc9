"""preference_adapter: DPO on top of the SFT adapter. Logic in forge_pipeline.feedback (plan, dpo)."""

import dagster as dg
import polars as pl

from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.defs.train.resources import launch_training
from forge_pipeline.feedback.outputs import PreferenceAdapter
from forge_pipeline.train.outputs import TrainedAdapter
from forge_pipeline.train.plan import finished_result, mlflow_run_url, png_markdown


@dg.asset(kinds={"pytorch", "mlflow"}, pool="forge/training", code_version="dpo-1")
def preference_adapter(
    context: dg.AssetExecutionContext,
    forge: ForgeSettingsResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    preference_pairs: pl.DataFrame,
    lora_adapter: TrainedAdapter,
) -> dg.MaterializeResult:
    """The SFT adapter trained further with DPO (trl DPOTrainer) on the preference pairs, tracked in MLflow.
    A no-op, materialized with `trained: false` and the reason, while there are fewer pairs than
    feedback.min_pairs. Trained in a subprocess through Dagster Pipes, like lora_adapter."""
    from forge_pipeline.feedback.plan import plan_preference_training

    settings = forge.get()
    job, reason = plan_preference_training(settings, preference_pairs, lora_adapter)
    if job is None:
        context.log.info(f"preference_adapter skipped: {reason}")
        return dg.MaterializeResult(
            value=PreferenceAdapter(trained=False, reason=reason, pairs=preference_pairs.height),
            metadata={"trained": False, "skipped_because": reason, "pairs": preference_pairs.height},
        )
    run = launch_training(context, settings, pipes_subprocess_client, "forge_pipeline.feedback.pipes_entry", job)
    # Checked as it is written: a trained run must describe a whole adapter (PreferenceAdapter.adapter).
    result = PreferenceAdapter.model_validate({**finished_result(job["output_dir"]), "trained": True})
    adapter = result.adapter()
    reported = run.get_materialize_result()
    return dg.MaterializeResult(
        value=result,
        metadata={
            **(reported.metadata or {}),
            "mlflow_run": dg.MetadataValue.url(
                mlflow_run_url(settings.train.mlflow_ui_url, adapter.mlflow_experiment_id, adapter.mlflow_run_id)
            ),
            "loss_curve": dg.MetadataValue.md(png_markdown(adapter.loss_curve_png) if adapter.loss_curve_png else ""),
            "pairs_version": result.pairs_version or "",
            "parent_mlflow_run_id": result.parent_mlflow_run_id or "",
        },
    )
