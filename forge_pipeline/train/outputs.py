"""Where the training stage leaves its result for downstream stages (export, evaluation, serving).

`lora_adapter` is a Dagster Pipes asset: the training subprocess reports the materialization's metadata and
the asset returns the result as its value, which the `io_manager` writes to `<data_root>/tables/lora_adapter.json`
(atomically; the same file it reads for an input named `lora_adapter`). Code outside Dagster reads it with
`read_lora_adapter(settings)`.

Fields: adapter_dir, base_model_dir, base_model_name, is_demo_model, mlflow_run_id, dataset_version, metrics
(plus run_key, tracking_uri, mlflow_experiment_id, loss_curve_png, hardware, resumed_from).
"""

from __future__ import annotations

import json
from pathlib import Path

from forge_pipeline.atomic import write_json_atomic

REQUIRED = (
    "adapter_dir",
    "base_model_dir",
    "base_model_name",
    "is_demo_model",
    "mlflow_run_id",
    "dataset_version",
    "metrics",
)


def lora_adapter_path(settings) -> Path:
    return settings.paths.tables / "lora_adapter.json"


def check_lora_adapter(result: dict) -> dict:
    missing = [f for f in REQUIRED if f not in result]
    if missing:
        raise ValueError(f"lora_adapter result lacks field(s) {missing}")
    return result


def write_lora_adapter(settings, result: dict) -> Path:
    """What the asset's IO manager writes, for code (and tests) that train outside Dagster."""
    return write_json_atomic(lora_adapter_path(settings), check_lora_adapter(result))


def read_lora_adapter(settings) -> dict:
    path = lora_adapter_path(settings)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained adapter yet; materialize lora_adapter first")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    missing = [f for f in REQUIRED if f not in result]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; re-materialize lora_adapter")
    return result
