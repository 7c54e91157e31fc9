"""Where the training stage leaves its result for downstream stages (export, evaluation, serving).

`lora_adapter` is a Dagster Pipes asset: the training subprocess reports the materialization's metadata and
the asset returns the result as its value, which the `io_manager` writes to `<data_root>/tables/lora_adapter.json`
(atomically; the same file it reads for an input named `lora_adapter`). Code outside Dagster reads it with
`read_lora_adapter(settings)`.

Fields: `TrainedAdapter` (plus what else the run recorded: run_key, tracking_uri, mlflow_experiment_id,
loss_curve_png, hardware, resumed_from, continued_from).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from forge_pipeline.atomic import write_json_atomic


class TrainedAdapter(BaseModel):
    """What `lora_adapter` hands on. The fields below must be present (None where there is no value: no MLflow
    run, no dataset version); whatever else the run recorded travels along unchanged (`extra="allow"`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    adapter_dir: Path
    base_model_dir: Path
    base_model_name: str | None
    is_demo_model: bool
    mlflow_run_id: str | None
    dataset_version: str | None
    metrics: dict[str, Any]
    # Recorded by every run since they were added; None in older tables.
    mlflow_experiment_id: str | None = None
    mlflow_model_id: str | None = None  # the adapter logged as an MLflow model (registered on publish)
    run_key: str | None = None  # data + hyperparameters + base model: the materialization's data version
    loss_curve_png: Path | None = None
    continued_from: dict[str, Any] | None = None  # the published version a taught run continued


def lora_adapter_path(settings) -> Path:
    return settings.paths.tables / "lora_adapter.json"


def write_lora_adapter(settings, result: dict) -> Path:
    """What the asset's IO manager writes, for code (and tests) that train outside Dagster."""
    return write_json_atomic(lora_adapter_path(settings), TrainedAdapter.model_validate(result).model_dump(mode="json"))


def read_lora_adapter(settings) -> TrainedAdapter:
    path = lora_adapter_path(settings)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained adapter yet; materialize lora_adapter first")
    try:
        return TrainedAdapter.model_validate_json(path.read_bytes())
    except ValidationError as err:
        raise ValueError(f"{path}: not a trained adapter ({err}); re-materialize lora_adapter") from None
