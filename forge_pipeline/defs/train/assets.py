"""The base model and the LoRA adapter: thin assets over forge_pipeline.train."""

import enum

import dagster as dg
from pydantic import Field, ValidationError

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.defs.resources import ForgeSettingsResource
from forge_pipeline.defs.train.resources import launch_training
from forge_pipeline.export.manifest import ManifestError, read_manifest
from forge_pipeline.train.base_models import ResolvedBaseModel
from forge_pipeline.train.config import TrainSettings
from forge_pipeline.train.outputs import TrainedAdapter
from forge_pipeline.train.plan import (
    dagster_run_url,
    dataset_dir_of,
    finished_result,
    mlflow_run_url,
    plan_training,
    png_markdown,
    teaching_parent,
)
from forge_pipeline.train.teach import TeachError


class Quantization(enum.Enum):
    """train.quantization as a Dagster enum: the launchpad offers these values and refuses any other."""

    auto = "auto"
    nf4 = "nf4"
    none = "none"


def _override(field: str, what: str):
    """An optional launchpad field whose description names the setting it overrides and that setting's default.
    Ranges are TrainSettings' own (one place), checked by `merged` when the run starts."""
    default = TrainSettings.model_fields[field].default
    return Field(default=None, description=f"{what} Unset: settings train.{field} (default {default!r}).")


class LoraAdapterConfig(dg.Config):
    """Per-run overrides of `train.*` settings from the launchpad (unset fields keep the settings' values).

    Dagster's config types have no ranges: a wrong enum value (`quantization: bogus`) is refused by the launchpad
    itself, an out-of-range number (`learning_rate: -1`) when the run starts, naming the field, before anything
    is trained and without the retries a training crash gets."""

    learning_rate: float | None = _override("learning_rate", "Peak learning rate (> 0).")
    num_train_epochs: float | None = _override("num_train_epochs", "Passes over the train split (> 0).")
    max_steps: int | None = _override("max_steps", "Stop after this many optimizer steps; -1: use the epochs.")
    lora_r: int | None = _override("lora_r", "LoRA rank (> 0).")
    lora_alpha: int | None = _override("lora_alpha", "LoRA scaling alpha (> 0).")
    lora_dropout: float | None = _override("lora_dropout", "Dropout on the LoRA path, in [0, 1).")
    per_device_train_batch_size: int | None = _override("per_device_train_batch_size", "Examples per batch.")
    gradient_accumulation_steps: int | None = _override("gradient_accumulation_steps", "Batches per optimizer step.")
    save_steps: int | None = _override("save_steps", "Checkpoint every this many steps (resume point).")
    eval_steps: int | None = _override("eval_steps", "Evaluate every this many steps; unset: once per epoch.")
    max_length: int | None = _override("max_length", "Longest example in tokens (> 16).")
    quantization: Quantization | None = _override("quantization", "auto (NF4 on CUDA), nf4 or none.")
    packing: bool | None = _override("packing", "Padding-free packing of examples.")
    seed: int | None = _override("seed", "Random seed of the run.")
    continue_from: str | None = _override(
        "continue_from", "A published version (v0003) or 'current': continue its adapter on what is new."
    )

    def merged(self, train: TrainSettings) -> TrainSettings:
        overrides = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        try:
            return TrainSettings.model_validate({**train.model_dump(), **overrides})
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})" for e in err.errors()
            )
            raise dg.Failure(
                f"lora_adapter config: {problems}. Fix the value in the launchpad (ops.lora_adapter.config).",
                allow_retries=False,
            ) from None


KEY_HYPERPARAMETERS = ("learning_rate", "lora_r", "lora_alpha", "num_train_epochs", "max_steps", "max_length")


@dg.asset(kinds={"pytorch"}, code_version="1")
def base_model(forge: ForgeSettingsResource, dataset_version: DatasetVersion) -> dg.MaterializeResult:
    """The model to fine-tune, from `train.base_model`: SmolLM2-135M-Instruct by default (packaged offline), the
    tiny DEMO Llama (`tiny-demo`, random weights, tokenizer trained on this dataset version) or a local folder."""
    from forge_pipeline.train.base_models import resolve_base_model
    from forge_pipeline.train.sft import corpus_texts

    settings = forge.get()
    resolved = ResolvedBaseModel.model_validate(
        resolve_base_model(settings, corpus_texts(dataset_dir_of(dataset_version)))
    )
    return dg.MaterializeResult(
        value=resolved,
        metadata={
            "path": dg.MetadataValue.path(str(resolved.path)),
            "name": resolved.name,
            "is_demo_model": resolved.is_demo_model,
            "parameters": resolved.parameters or 0,
            "licence": resolved.licence,
            "source": resolved.source,
        },
    )


# A retry re-launches the subprocess, which resumes from the newest checkpoint of the same run key (same data,
# hyperparameters and base model); the backoff gives a machine short of memory time to recover. code_version
# changes when the training recipe changes, so Dagster shows adapters trained by older code as stale.
@dg.asset(
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
    base_model: ResolvedBaseModel,
    dataset_version: DatasetVersion,
) -> dg.MaterializeResult:
    """A LoRA adapter fine-tuned on the dataset version (trl SFT, assistant tokens only), tracked in MLflow.
    Trained in a subprocess through Dagster Pipes; a retry with the same data and config resumes from the
    last checkpoint. Its value (the IO manager writes tables/lora_adapter.json) is what `read_lora_adapter` reads."""
    settings = forge.get()
    hp = config.merged(settings.train)
    try:
        manifest = read_manifest(settings.paths.manifest) if hp.continue_from else {}
        parent, from_base = teaching_parent(settings, hp, base_model.name, dataset_version, manifest)
    except (TeachError, ManifestError) as err:
        raise dg.Failure(str(err), allow_retries=False) from None
    if from_base:
        context.log.warning(from_base)
    job = plan_training(settings, hp, base_model, dataset_version, parent)
    run_url = dagster_run_url(settings.dagster_ui_url, context.run.run_id)
    job["run_tags"] = {
        "dagster.run_id": context.run.run_id,
        "dagster.run_url": run_url,
        # MLflow shows this tag as the run's description (Markdown): the way back to the Dagster run.
        "mlflow.note.content": f"Trained by Dagster run [{context.run.run_id}]({run_url}) (asset `lora_adapter`).",
    }
    # Lineage on the Dagster side: the run list can be filtered by dataset version, base model, hyperparameters.
    # The values are only known here, after the run started; Dagster 1.13 (pinned) has no public way to tag a
    # running run; add_run_tags is the instance's own method (no public marker). Revisit when one appears.
    context.instance.add_run_tags(
        context.run.run_id,
        {
            "forge/dataset_version": job["dataset_version"],
            "forge/base_model": str(job["base_model_name"]),
            **{f"forge/{k}": f"{getattr(hp, k):g}" for k in KEY_HYPERPARAMETERS},
        },
    )
    run = launch_training(context, settings, pipes_subprocess_client, "forge_pipeline.train.pipes_entry", job)
    # The contract downstream stages read, checked as it is written.
    adapter = TrainedAdapter.model_validate(finished_result(job["output_dir"]))
    reported = run.get_materialize_result()
    hyperparameters = hp.model_dump(mode="json", exclude={"tiny_model", "mlflow_ui_url"})
    # The value goes through the IO manager (tables/lora_adapter.json), like preference_adapter's: one way out.
    # Its data version is the run key (data content + hyperparameters + base model): the same training twice
    # leaves evaluation and export in sync.
    return dg.MaterializeResult(
        asset_key=reported.asset_key,
        value=adapter,
        data_version=dg.DataVersion(adapter.run_key or ""),
        metadata={
            **(reported.metadata or {}),
            "mlflow_run": dg.MetadataValue.url(
                mlflow_run_url(settings.train.mlflow_ui_url, adapter.mlflow_experiment_id, adapter.mlflow_run_id)
            ),
            "adapter_dir": dg.MetadataValue.path(str(adapter.adapter_dir)),
            "loss_curve": dg.MetadataValue.md(png_markdown(adapter.loss_curve_png) if adapter.loss_curve_png else ""),
            "is_demo_model": adapter.is_demo_model,
            "dataset_version": adapter.dataset_version or "",
            "base_model": adapter.base_model_name or "",
            "continued_from": (adapter.continued_from or {}).get("version") or "",
            "hyperparameters": dg.MetadataValue.json(hyperparameters),
            **{k: hyperparameters[k] for k in KEY_HYPERPARAMETERS},
        },
    )
