"""The TrainingArguments both trainers share (trl's SFTConfig for the LoRA run, DPOConfig for the preference run):
the same hyperparameter names, the same seeding, precision and quiet logging, written once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class TrainerHyperparameters(Protocol):
    """What TrainSettings and FeedbackSettings both name the same way."""

    learning_rate: float
    num_train_epochs: float
    max_steps: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_length: int
    seed: int


def shared_trainer_args(output_dir: Path, hp: TrainerHyperparameters, cuda: bool) -> dict[str, Any]:
    """Keyword arguments for an SFTConfig or DPOConfig: checkpoints under `output_dir/checkpoints`, the data order
    seeded like the model, bf16 on CUDA (CPU otherwise), no reporting integrations (MLflow is logged by Forge) and
    no worker processes or progress bars (a subprocess's output is its log)."""
    return {
        "output_dir": str(output_dir / "checkpoints"),
        "learning_rate": hp.learning_rate,
        "num_train_epochs": hp.num_train_epochs,
        "max_steps": hp.max_steps,
        "per_device_train_batch_size": hp.per_device_train_batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation_steps,
        "max_length": hp.max_length,
        "seed": hp.seed,
        "data_seed": hp.seed,
        "logging_first_step": True,
        "bf16": cuda,
        "fp16": False,
        "use_cpu": not cuda,
        "report_to": [],
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
