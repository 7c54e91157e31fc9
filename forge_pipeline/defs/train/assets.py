"""The base model and the LoRA adapter: thin assets over forge_pipeline.train."""

import dagster as dg

from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.defs.train.resources import launch_training
from forge_pipeline.train.config import TrainSettings
from forge_pipeline.train.outputs import check_lora_adapter
from forge_pipeline.train.plan import dataset_dir_of, finished_result, mlflow_run_url, plan_training, png_markdown


class LoraAdapterConfig(dg.Config):
    """Per-run overrides of `train.*` settings from the launchpad (unset fields keep the settings' values)."""

    learning_rate: float | None = None
    num_train_epochs: float | None = None
    max_steps: int | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    lora_dropout: float | None = None
    per_device_train_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    save_steps: int | None = None
    eval_steps: int | None = None
    max_length: int | None = None
    quantization: str | None = None  # auto | nf4 | none (validated by TrainSettings)
    packing: bool | None = None
    seed: int | None = None

    def merged(self, train: TrainSettings) -> TrainSettings:
        overrides = {k: v for k, v in self.model_dump().items() if v is not None}
        return TrainSettings.model_validate({**train.model_dump(), **overrides})


@dg.asset(group_name="train", kinds={"pytorch"})
def base_model(forge: ForgeSettingsResource, dataset_version: dict) -> dg.MaterializeResult:
    """The model to fine-tune, from `train.base_model`: SmolLM2-135M-Instruct by default (packaged offline), the
    tiny DEMO Llama (`tiny-demo`, random weights, tokenizer trained on this dataset version) or a local folder."""
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import corpus_texts

    settings = forge.get()
    resolved = resolve_base_model(settings, corpus_texts(dataset_dir_of(dataset_version)))
    return dg.MaterializeResult(
        value=resolved,
        metadata={
            "path": dg.MetadataValue.path(resolved["path"]),
            "name": resolved["name"],
            "is_demo_model": resolved["is_demo_model"],
            "parameters": resolved["parameters"] or 0,
            "licence": resolved["licence"],
            "source": resolved["source"],
        },
    )


# A retry re-launches the subprocess, which resumes from the newest checkpoint of the same run key (same data,
# hyperparameters and base model); the backoff gives a machine short of memory time to recover. code_version
# changes when the training recipe changes, so Dagster shows adapters trained by older code as stale.
@dg.asset(
    group_name="train",
    kinds={"pytorch", "mlflow"},
    pool="forge/training",
    code_version="sft-2",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
)
def lora_adapter(
    context: dg.AssetExecutionContext,
    config: LoraAdapterConfig,
    forge: ForgeSettingsResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    base_model: dict,
    dataset_version: dict,
) -> dg.MaterializeResult:
    """A LoRA adapter fine-tuned on the dataset version (trl SFT, assistant tokens only), tracked in MLflow.
    Trained in a subprocess through Dagster Pipes; a retry with the same data and config resumes from the
    last checkpoint. Its value (the IO manager writes tables/lora_adapter.json) is what `read_lora_adapter` reads."""
    settings = forge.get()
    job = plan_training(settings, config.merged(settings.train), base_model, dataset_version)
    run = launch_training(context, settings, pipes_subprocess_client, "forge_pipeline.train.pipes_entry", job)
    result = check_lora_adapter(finished_result(job["output_dir"]))
    reported = run.get_materialize_result()
    # The value goes through the IO manager (tables/lora_adapter.json), like preference_adapter's: one way out.
    return dg.MaterializeResult(
        asset_key=reported.asset_key,
        value=result,
        metadata={
            **(reported.metadata or {}),
            "mlflow_run": dg.MetadataValue.url(mlflow_run_url(settings.train.mlflow_ui_url, result)),
            "adapter_dir": dg.MetadataValue.path(result["adapter_dir"]),
            "loss_curve": dg.MetadataValue.md(png_markdown(result["loss_curve_png"])),
            "is_demo_model": result["is_demo_model"],
            "dataset_version": result["dataset_version"] or "",
        },
    )
