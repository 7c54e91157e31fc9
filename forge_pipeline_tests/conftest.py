"""Shared fixtures: settings on a temporary data root, and the shipped sample data's location."""

import os
from pathlib import Path

import pytest

from forge_pipeline.settings import SAMPLE_DATA, load_settings

# The suite trains the tiny random-init Llama (seconds) instead of the default SmolLM2 (minutes); set before any
# settings are built, and inherited by the subprocesses tests start (Pipes training, `forge demo`). The one test
# on the real model (test_train_smollm2.py) selects it explicitly.
os.environ.setdefault("FORGE_TRAIN__BASE_MODEL", "tiny-demo")


@pytest.fixture
def settings(tmp_path: Path):
    """Settings whose outputs all land in a temporary data root (inputs default to the sample data)."""
    return load_settings(data_root=tmp_path / "data_root")


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA
