"""The adapter manifest through publish(): promotion, a failed gate, rollback, corruption, and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.export.handoff import Evaluation, GgufAdapter, GgufModel
from forge_pipeline.export.manifest import ManifestError, read_manifest, rollback, verify_version
from forge_pipeline.export.publish import adapter_info, publish
from forge_pipeline.settings import load_settings


def _version_files(root, name: str) -> tuple[dict, dict]:
    """Distinct small files standing in for one export's GGUFs (the manifest only hashes bytes)."""
    folder = root / "exports" / name
    folder.mkdir(parents=True)
    for role in ("merged", "adapter"):
        (folder / f"{role}.gguf").write_bytes(f"GGUF {name} {role}".encode() * 100)
    base = root / "exports" / "base" / "base.gguf"
    base.parent.mkdir(parents=True, exist_ok=True)
    if not base.exists():
        base.write_bytes(b"GGUF base" * 100)
    return (
        GgufModel(merged_gguf=folder / "merged.gguf", base_gguf=base, base_f16_gguf=base, quant_type="Q4_K_M"),
        GgufAdapter(adapter_gguf=folder / "adapter.gguf", base_gguf=base, base_f16_gguf=base),
    )


@pytest.fixture
def info(tmp_path):
    adapter = tmp_path / "adapters" / "run"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    return adapter_info(
        {
            "adapter_dir": str(adapter),
            "base_model_dir": str(tmp_path),
            "is_demo_model": True,
            "mlflow_run_id": "abc123",
            "dataset_version": "ds-0001",
        }
    )


def _evaluation(promoted: bool, tuned: float = 1.5) -> Evaluation:
    return Evaluation(
        base_loss=2.0,
        tuned_loss=tuned,
        relative_improvement=(2.0 - tuned) / 2.0,
        min_relative_improvement=0.01,
        promoted=promoted,
        reason="test gate",
    )


def test_publish_promote_failed_gate_rollback_and_corruption(tmp_path, info):
    settings = load_settings(data_root=tmp_path)
    path = settings.paths.manifest

    first = publish(path, info, _evaluation(True), *_version_files(tmp_path, "one"))
    assert first.model_dump(mode="json") == {
        "version": "v0001",
        "current": "v0001",
        "promoted": True,
        "already_published": False,
        "manifest_path": str(path),
        "versions": 1,
    }
    second = publish(path, info, _evaluation(True, 1.2), *_version_files(tmp_path, "two"))
    assert second.current == "v0002"

    failed = publish(path, info, _evaluation(False, 2.5), *_version_files(tmp_path, "three"))
    manifest = read_manifest(path)
    assert failed.version == "v0003" and manifest["current"] == "v0002"  # kept, not current
    assert manifest["versions"]["v0003"]["promoted"] is False
    assert manifest["versions"]["v0003"]["evaluation"]["tuned_loss"] == 2.5
    assert manifest["history"] == ["v0001", "v0002"]
    entry = manifest["versions"]["v0002"]
    assert entry["dataset_version"] == "ds-0001" and entry["mlflow_run_id"] == "abc123"
    assert entry["base_model"] == {"name": tmp_path.name, "is_demo_model": True}
    # Paths are stored relative to the manifest's folder so the data root can move.
    assert entry["files"]["merged_gguf"]["path"] == "../exports/two/merged.gguf"

    assert rollback(path)["current"] == "v0001"
    assert rollback(path, "v0002")["current"] == "v0002"

    (tmp_path / "exports" / "one" / "adapter.gguf").write_bytes(b"corrupted")
    with pytest.raises(ManifestError, match="v0001 adapter_gguf .* does not match its sha256"):
        verify_version(read_manifest(path), "v0001", path)
    with pytest.raises(ManifestError, match="does not match"):
        rollback(path, "v0001")
    assert read_manifest(path)["current"] == "v0002"  # a refused rollback changes nothing


def test_publishing_the_same_files_again_returns_the_existing_version(tmp_path, info):
    path = load_settings(data_root=tmp_path).paths.manifest
    files = _version_files(tmp_path, "one")
    first = publish(path, info, _evaluation(True), *files)
    before = read_manifest(path)

    # A retry, or a re-run with a stricter gate: same version, nothing added, the promotion stands.
    again = publish(path, info, _evaluation(False, 2.5), *files)
    assert again == first.model_copy(update={"already_published": True})
    assert read_manifest(path) == before  # not even the evaluation or created_at is rewritten

    # The same files for another dataset version are another version.
    other = publish(path, info, _evaluation(True), *files, dataset_version="ds-0002")
    assert other.version == "v0002" and other.already_published is False


def test_a_rerun_promotes_a_version_its_earlier_gate_kept_back_but_never_undoes_a_rollback(tmp_path, info):
    path = load_settings(data_root=tmp_path).paths.manifest
    one, two = _version_files(tmp_path, "one"), _version_files(tmp_path, "two")
    assert publish(path, info, _evaluation(False, 2.5), *one).current is None

    # The gate passes on a re-run (a looser margin): the version that was kept back is promoted now.
    rerun = publish(path, info, _evaluation(True, 1.25), *one)
    assert rerun.version == "v0001" and rerun.already_published and rerun.current == "v0001"
    manifest = read_manifest(path)
    assert manifest["versions"]["v0001"]["evaluation"]["tuned_loss"] == 1.25 and manifest["history"] == ["v0001"]

    publish(path, info, _evaluation(True), *two)
    rollback(path)
    assert publish(path, info, _evaluation(True), *two).current == "v0001"  # the rollback stands
    assert read_manifest(path)["history"] == ["v0001"] and len(read_manifest(path)["versions"]) == 2


def test_a_rerun_of_the_ab_candidate_keeps_one_candidate_version(tmp_path, info):
    path = load_settings(data_root=tmp_path).paths.manifest
    publish(path, info, _evaluation(True), *_version_files(tmp_path, "sft"))
    dpo = _version_files(tmp_path, "dpo")
    first = publish(path, info, _evaluation(True), *dpo, candidate_share=0.2, kind="dpo")
    again = publish(path, info, _evaluation(True), *dpo, candidate_share=0.2, kind="dpo")
    assert first.version == again.version == "v0002" and again.already_published
    manifest = read_manifest(path)
    assert manifest["candidate"] == {"version": "v0002", "traffic_share": 0.2} and len(manifest["versions"]) == 2


def test_publish_refuses_missing_files_and_leaves_manifest_alone(tmp_path, info):
    path = load_settings(data_root=tmp_path).paths.manifest
    model, adapter = _version_files(tmp_path, "one")
    (tmp_path / "exports" / "one" / "merged.gguf").unlink()
    with pytest.raises(ManifestError, match="merged_gguf .* does not exist"):
        publish(path, info, _evaluation(True), model, adapter)
    assert not path.exists()


def test_adapter_info_names_the_missing_field(tmp_path):
    with pytest.raises(ValueError, match="missing field.*adapter_dir"):
        adapter_info({"base_model_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="no adapter_config.json"):
        adapter_info({"adapter_dir": str(tmp_path), "base_model_dir": str(tmp_path)})


def test_cli_models_and_rollback(tmp_path, info):
    path = load_settings(data_root=tmp_path).paths.manifest
    publish(path, info, _evaluation(True, 1.75), *_version_files(tmp_path, "one"))
    publish(path, info, _evaluation(True, 1.25), *_version_files(tmp_path, "two"))
    runner = CliRunner()

    listed = runner.invoke(app, ["--data-root", str(tmp_path), "models"])
    assert listed.exit_code == 0, listed.output
    assert "v0001" in listed.output and "v0002" in listed.output and "1.2500" in listed.output

    rolled = runner.invoke(app, ["--data-root", str(tmp_path), "rollback"])
    assert rolled.exit_code == 0 and "current: v0001" in rolled.output
    assert json.loads(path.read_text())["current"] == "v0001"

    unknown = runner.invoke(app, ["--data-root", str(tmp_path), "rollback", "v0099"])
    assert unknown.exit_code == 1 and "v0099" in unknown.output


def test_rollback_twice_walks_back_through_history_and_says_so(tmp_path, info):
    path = load_settings(data_root=tmp_path).paths.manifest
    for name in ("one", "two", "three"):
        publish(path, info, _evaluation(True), *_version_files(tmp_path, name))
    runner = CliRunner()
    first = runner.invoke(app, ["--data-root", str(tmp_path), "rollback"])
    assert first.exit_code == 0 and "current: v0002 (was v0003" in first.output
    assert "again goes back to v0001" in first.output
    second = runner.invoke(app, ["--data-root", str(tmp_path), "rollback"])
    assert second.exit_code == 0 and "current: v0001 (was v0002" in second.output, second.output
    assert read_manifest(path)["history"] == ["v0001"]
    third = runner.invoke(app, ["--data-root", str(tmp_path), "rollback"])
    assert third.exit_code == 1 and "no earlier promoted version" in third.output
    # Naming a version is a new promotion: it goes on top of the history.
    assert rollback(path, "v0003")["history"] == ["v0001", "v0003"]
