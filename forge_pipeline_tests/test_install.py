"""An installed Forge (a wheel, not the editable checkout) runs from any folder: the sample data and Forge's
dagster.yaml ship inside the package, and outputs go to the working directory's `.forge_data`, never beside the
installed package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Forge's wheel, built from a copy of the checkout (a build writes `build/` and egg-info where it runs)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "forge_pipeline", source / "forge_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return next(out.glob("forge_pipeline-*.whl"))


def test_the_wheel_holds_the_sample_data_and_dagster_settings(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = REPO / "forge_pipeline" / "sample_data"
    expected = {
        p.relative_to(REPO).as_posix() for p in shipped.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected and expected <= names, sorted(expected - names)[:10]
    assert "forge_pipeline/dagster.yaml" in names
    assert "forge_pipeline/serve/playground/index.html" in names


@pytest.mark.slow
def test_an_installed_forge_runs_the_demo_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The installed copy comes first on the path, so neither the checkout nor its editable install is imported.
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    for name in ("FORGE_DATA_ROOT", "DAGSTER_HOME", "FORGE_CONFIG"):
        env.pop(name, None)
    where = subprocess.run(
        [sys.executable, "-c", "import forge_pipeline; print(forge_pipeline.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    before = sorted(p.relative_to(site) for p in (site / "forge_pipeline").rglob("*") if "__pycache__" not in p.parts)
    demo = subprocess.run(
        [sys.executable, "-m", "forge_pipeline.cli", "demo", "--select", "vault_notes,conversations"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "✓ vault_notes" in demo.stdout and "✓ conversations" in demo.stdout
    root = elsewhere / ".forge_data"
    assert (root / "dagster_home" / "dagster.yaml").read_text() == (
        REPO / "forge_pipeline" / "dagster.yaml"
    ).read_text()
    assert list((root / "tables").glob("vault_notes*")), sorted(p.name for p in root.rglob("*"))[:20]
    after = sorted(p.relative_to(site) for p in (site / "forge_pipeline").rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written inside the installed package
