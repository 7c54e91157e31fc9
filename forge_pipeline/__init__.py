"""Forge: turn an Obsidian vault and chat interactions into a continuously fine-tuned local LLM."""

import os

__version__ = "0.1.0"

# Nothing leaves the machine: MLflow (>= 3.2) sends usage telemetry unless MLFLOW_DISABLE_TELEMETRY is true
# (mlflow/telemetry/utils.py `is_telemetry_disabled`, read when `mlflow` is imported). Every Forge process
# imports this package before mlflow, and the training subprocesses inherit the variable. An explicit
# MLFLOW_DISABLE_TELEMETRY=false in the environment opts back in.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
