"""MLflow tracking shared by the SFT and DPO runs: per-step metrics, the loss curve, the finished-run record.

Both trainers log through `metrics_callback` (a transformers `TrainerCallback`), draw `loss_curve_png`, and
finish with `record_finished_run`, so an SFT and a DPO run look the same in MLflow and on disk.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from forge_pipeline.atomic import atomic_path, write_json_atomic

ProgressFn = Callable[[dict], None]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


class StepMetrics:
    """Per-step metrics to MLflow (loss, eval_loss, learning rate, tokens/s, GPU memory) and to `progress`."""

    def __init__(self, mlflow_module, progress: ProgressFn | None, cuda: bool):
        self.mlflow, self.progress, self.cuda = mlflow_module, progress, cuda
        self.history: list[dict] = []
        self._last: tuple[float, float] | None = None  # (time, num_tokens) at the previous log

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
        self.mlflow.log_metrics(metrics, step=state.global_step)
        entry = {"step": state.global_step, **metrics}
        self.history.append(entry)
        if self.progress:
            self.progress(entry)


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
    return type("ForgeMetricsCallback", (TrainerCallback,), {"on_log": metrics.on_log})(), metrics


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
