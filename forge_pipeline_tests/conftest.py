"""Shared fixtures: settings on a temporary data root, and the shipped sample data's location."""

from pathlib import Path

import pytest

from forge_pipeline.settings import SAMPLE_DATA, load_settings


@pytest.fixture
def settings(tmp_path: Path):
    """Settings whose outputs all land in a temporary data root (inputs default to the sample data)."""
    return load_settings(data_root=tmp_path / "data_root")


@pytest.fixture
def sample_data() -> Path:
    return SAMPLE_DATA
