"""MLflow tracking shared by the SFT and DPO runs: the experiment, per-step metrics and progress, the loss
curve, the dataset input, the adapter as a logged model, the finished-run record.

Both trainers open their experiment with `training_experiment` (artifacts under the data root, MLflow's
training view), log through `metrics_callback` (a transformers `TrainerCallback`), draw `loss_curve_png`, and
finish with `record_finished_run`, so an SFT and a DPO run look the same in MLflow and on disk.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from forge_pipeline.atomic import atomic_path, write_json_atomic
from forge_pipeline.durations import format_duration

ProgressFn = Callable[[dict], None]

# MLflow's UI opens an experiment in the view its `mlflow.experimentKind` tag names; without the tag it guesses,
# and a run with logged datasets and models is guessed to be GenAI work. Forge's runs are model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store (`<dir of mlflow.db>/artifacts/<name>`).

    MLflow's own default for a SQLite store is `./mlruns` in the working directory of whichever process
    creates the experiment, so runs would land wherever Dagster or a test happened to start. A remote tracking
    server decides for itself (None)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri[len("sqlite:///") :]).resolve()
    return (database.parent / "artifacts" / re.sub(r"[^\w.-]", "_", experiment)).as_uri()


def training_experiment(tracking_uri: str, name: str) -> str:
    """The id of experiment `name`, created with its artifacts under the data root and MLflow's training view."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name,
                artifact_location=artifact_location(tracking_uri, name),
                tags={EXPERIMENT_KIND_TAG: TRAINING_EXPERIMENT_KIND},
            )
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:  # no: the creation itself failed, and says why
                raise
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_EXPERIMENT_KIND)
    return experiment.experiment_id


def run_name(kind: str, base_model: str, dataset_version: str | None, hp) -> str:
    """A run name a person can tell apart in MLflow's run list: what, on which base and data, with which knobs."""
    return f"{kind} {base_model} · {dataset_version or 'unversioned'} · r{hp.lora_r} lr{hp.learning_rate:g}"


def hyperparameter_tags(hp) -> dict[str, str]:
    """The hyperparameters people filter and group runs by, as tags (`tags.lora_r = '16'` in MLflow's search);
    every hyperparameter is also a param."""
    return {
        "lora_r": str(hp.lora_r),
        "learning_rate": f"{hp.learning_rate:g}",
        "quantization": str(hp.quantization),
        "max_length": str(hp.max_length),
    }


def log_dataset_input(mlflow_module, splits, dataset_dir: Path, version: str | None, content_hash: str) -> None:
    """The dataset version as the run's input (MLflow's Datasets column), one entry per split named
    `<version>/<split>` (MLflow keeps one input per name and digest); the digest is the content hash, so two runs
    on the same data show the same dataset whatever its version id says."""
    for split, dataset in splits.items():
        name = f"{version or content_hash[:12]}/{split}"
        entry = mlflow_module.data.from_huggingface(dataset, path=str(dataset_dir), name=name, digest=content_hash[:12])
        mlflow_module.log_input(entry, context="training" if split == "train" else split)


def log_adapter_model(tracking_uri: str, run, adapter_dir: Path, params: dict, model_type: str) -> str:
    """The adapter folder as an MLflow logged model of the run (the experiment's Models tab); the registry
    versions of `register_adapter` point at it. Returns the model id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    model = client.create_logged_model(
        experiment_id=run.info.experiment_id,
        name="adapter",
        source_run_id=run.info.run_id,
        params={k: str(v) for k, v in params.items()},
        model_type=model_type,
    )
    try:
        client.log_model_artifacts(model.model_id, str(adapter_dir))
    except Exception:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    client.finalize_logged_model(model.model_id, "READY")
    return model.model_id


def register_adapter(tracking_uri: str, model_name: str, model_id: str, manifest_version: str, current: bool) -> str:
    """Register the adapter's logged model as a version of `model_name`, tagged with the manifest version, with
    alias `candidate` (the newest published) and `current` when the manifest serves it. Idempotent: the same
    logged model registered again reuses its version. Returns the registry version."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.create_registered_model(model_name, description="Forge LoRA adapters (one version per manifest entry)")
    except MlflowException:
        pass  # exists already
    # Matched by tag: search results of the SQL registry leave ModelVersion.model_id empty (mlflow 3.17).
    existing = [
        v for v in client.search_model_versions(f"name='{model_name}'") if v.tags.get("forge.model_id") == model_id
    ]
    if existing:
        version = existing[0].version
    else:
        model = client.get_logged_model(model_id)
        # The model's storage location as the source, with model_id: given `models:/<id>`, MLflow's SQL registry
        # looks the model up through the process-global tracking URI instead of this client's (mlflow 3.17).
        version = client.create_model_version(
            model_name,
            model.artifact_location,
            run_id=model.source_run_id,
            model_id=model_id,
            tags={"forge.model_id": model_id},
        ).version
    client.set_model_version_tag(model_name, version, "forge.manifest_version", manifest_version)
    client.set_registered_model_alias(model_name, "candidate", version)
    if current:
        client.set_registered_model_alias(model_name, "current", version)
    return str(version)


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class StepMetrics:
    """Per-step metrics to MLflow (loss, eval_loss, learning rate, tokens/s, GPU memory) and to `progress`.

    Each metric is logged once per step: the final `trainer.evaluate()` logs eval metrics at the step the last
    in-training evaluation already logged them, which drew a second point (a spike) in MLflow's charts. The
    progress entry carries the step out of the total, the elapsed time and an ETA from the steps done so far."""

    def __init__(self, mlflow_module, progress: ProgressFn | None, cuda: bool):
        self.mlflow, self.progress, self.cuda = mlflow_module, progress, cuda
        self.history: list[dict] = []
        self._last: tuple[float, float] | None = None  # (time, num_tokens) at the previous log
        self._logged: set[tuple[str, int]] = set()
        self._start: tuple[float, int] | None = None  # (time, step) when this process began training

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = (time.perf_counter(), state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        now = time.perf_counter()
        # trl counts real (non-padding) tokens seen so far in `num_tokens`; the rate between two logs is
        # what the benchmark compares, so padding never inflates it.
        if "num_tokens" in metrics and "loss" in metrics:
            if self._last is not None and metrics["num_tokens"] > self._last[1]:
                metrics["tokens_per_s"] = (metrics["num_tokens"] - self._last[1]) / max(now - self._last[0], 1e-9)
            self._last = (now, metrics["num_tokens"])
        if self.cuda:
            import torch

            metrics["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        step = state.global_step
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._logged}
        if fresh:
            self.mlflow.log_metrics(fresh, step=step)
            self._logged.update((k, step) for k in fresh)
        entry = {"step": step, "total_steps": state.max_steps, **metrics}
        if self._start is not None:
            started, first_step = self._start
            entry["elapsed_s"] = now - started
            if step > first_step and state.max_steps:
                entry["eta_s"] = (now - started) / (step - first_step) * max(state.max_steps - step, 0)
        self.history.append(entry)
        if self.progress:
            self.progress(entry)


def format_progress(entry: dict) -> str:
    """One line a person reads in the Dagster run log: `step 4/28 (14%) loss 2.31 312 tok/s ETA 1m20s`."""
    if entry.get("event") == "resume":
        return f"resuming from {entry.get('checkpoint')}"
    step, total = entry.get("step", 0), entry.get("total_steps") or 0
    parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}"]
    for key, label in (("loss", "loss"), ("eval_loss", "eval_loss")):
        if key in entry:
            parts.append(f"{label} {entry[key]:.4g}")
    if "tokens_per_s" in entry:
        parts.append(f"{entry['tokens_per_s']:,.0f} tok/s")
    if "eta_s" in entry and step < total:
        parts.append(f"ETA {format_duration(entry['eta_s'])}")
    elif "elapsed_s" in entry and total and step >= total:
        parts.append(f"done in {format_duration(entry['elapsed_s'])}")
    return " ".join(parts)


def loss_curve_png(history: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def metrics_callback(mlflow_module, progress: ProgressFn | None, cuda: bool):
    """(TrainerCallback for the trainer, StepMetrics holding the logged history)."""
    from transformers import TrainerCallback

    metrics = StepMetrics(mlflow_module, progress, cuda)
    hooks = {"on_log": metrics.on_log, "on_train_begin": metrics.on_train_begin}
    return type("ForgeMetricsCallback", (TrainerCallback,), hooks)(), metrics


def record_finished_run(output_dir: Path, key: str, mlflow_run_id: str, result: dict) -> None:
    """run_state.json says finished (a re-materialization reuses the result instead of retraining), then the
    checkpoints go: the adapter is safe in adapter/, and optimizer states are their bulk."""
    write_json_atomic(
        output_dir / "run_state.json",
        {"run_key": key, "mlflow_run_id": mlflow_run_id, "status": "finished", "result": result},
    )
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)


class NoMlflow:
    """Non-main processes under `accelerate launch` log nothing."""

    def log_metrics(self, *args, **kwargs):
        pass


def forge_version() -> str:
    try:
        from importlib.metadata import version

        return version("forge_pipeline")
    except Exception:  # not installed as a distribution (a plain checkout)
        return "dev"
