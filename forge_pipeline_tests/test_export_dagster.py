"""Dagster materialization of adapter_evaluation → gguf_model, gguf_adapter → adapter_manifest, with checks.

The upstream `lora_adapter` and `dataset_version` outputs are written as JSON tables by the test, as the
train and catalog stages would store them.
"""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from forge_pipeline.definitions import group_definitions
from forge_pipeline.defs.export.assets import gguf_adapter, gguf_model
from forge_pipeline.defs.export.resources import export_resources
from forge_pipeline.defs.resources import shared_resources
from forge_pipeline.defs.serve.manifest import adapter_manifest, manifest_files_match
from forge_pipeline.defs.train.evaluation import adapter_evaluation, adapter_evaluation_gate
from forge_pipeline.export.manifest import read_manifest, verify_version
from forge_pipeline.settings import load_settings
from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")

UPSTREAM = [dg.AssetSpec("lora_adapter"), dg.AssetSpec("dataset_version")]
EXPORT_ASSETS = [adapter_evaluation, gguf_model, gguf_adapter, adapter_manifest]


def _write_upstream(root):
    settings = load_settings(data_root=root)
    settings.paths.ensure()
    base = build_tiny_llama_for_tests(settings.paths.models / "tiny")
    adapter = build_random_lora_adapter(base, settings.paths.adapters / "run-1")
    catalog = settings.paths.catalog / "v0001"
    catalog.mkdir(parents=True)
    rows = [
        [
            {"role": "user", "content": "How should I plan the migration?"},
            {"role": "assistant", "content": "Write a rollback step before we touch production."},
        ],
        [
            {"role": "user", "content": "Reflect on the week."},
            {"role": "assistant", "content": "What went well, and what drained your energy."},
        ],
    ]
    (catalog / "validation.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    (settings.paths.tables / "lora_adapter.json").write_text(
        json.dumps(
            {
                "adapter_dir": str(adapter),
                "base_model_dir": str(base),
                "base_model_name": "tiny-demo-llama",
                "is_demo_model": True,
                "mlflow_run_id": None,
                "dataset_version": "v0001",
                "metrics": {},
            }
        )
    )
    (settings.paths.tables / "dataset_version.json").write_text(json.dumps({"version": "v0001", "path": str(catalog)}))
    prompts = root / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"prompt_id": f"p{i}", "messages": [{"role": "user", "content": text}]}) + "\n"
            for i, text in enumerate(["Should I take the lead role?", "What drained me?"])
        )
    )
    return settings, prompts


def _materialize(root, selection=None):
    return dg.materialize(
        [
            *UPSTREAM,
            *EXPORT_ASSETS,
            *group_definitions("export").asset_checks,
            adapter_evaluation_gate,
            manifest_files_match,
        ],
        resources=shared_resources(str(root)) | export_resources(),
        instance=dg.DagsterInstance.ephemeral(),
        selection=selection,
    )


@pytest.mark.slow
def test_export_chain_publishes_once_per_content_and_keeps_a_failed_gate_unpromoted(tmp_path, monkeypatch):
    settings, prompts = _write_upstream(tmp_path)
    monkeypatch.setenv("FORGE_EVAL_PROMPTS", str(prompts))
    monkeypatch.setenv("FORGE_EVAL__MAX_NEW_TOKENS", "8")
    monkeypatch.setenv("FORGE_EVAL__MIN_RELATIVE_IMPROVEMENT", "-1.0")  # any tuned loss below 2x base passes
    # A random tiny adapter's 8 tokens are noise: the answer-quality gate is tested in test_export_answer_quality.
    monkeypatch.setenv("FORGE_EVAL__QUALITY__ENABLED", "false")

    first = _materialize(tmp_path)
    assert first.success
    checks = {e.asset_check_key.name: e for e in first.get_asset_check_evaluations()}
    assert set(checks) == {
        "adapter_evaluation_gate",
        "gguf_model_generates",
        "gguf_model_quantization_gap",
        "gguf_adapter_applies",
        "manifest_files_match",
    }
    assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items()}
    gap = checks["gguf_model_quantization_gap"].metadata
    assert 0.0 < gap["merged_max_abs_gap"].value < settings.export.max_logit_gap
    assert checks["gguf_adapter_applies"].metadata["max_logit_change_vs_base"].value > 0.0

    evaluation = first.asset_materializations_for_node("adapter_evaluation")[0].metadata
    assert evaluation["promoted"].value is True and "Should I take the lead role?" in [
        r.data["prompt"] for r in evaluation["side_by_side"].records
    ]
    model_meta = first.asset_materializations_for_node("gguf_model")[0].metadata
    assert 4.0 < model_meta["merged_bits_per_weight"].value < 6.0
    assert {"merge_s", "convert_s", "quantize_s"} <= set(model_meta["seconds_by_stage"].value)

    manifest = read_manifest(settings.paths.manifest)
    assert manifest["current"] == "v0001"
    files = verify_version(manifest, "v0001", settings.paths.manifest)
    assert set(files) == {"base_gguf", "merged_gguf", "adapter_gguf"}
    assert manifest["versions"]["v0001"]["dataset_version"] == "v0001"
    assert manifest["versions"]["v0001"]["base_model"] == {"name": "tiny-demo-llama", "is_demo_model": True}

    # Re-materialized with a stricter gate but the same files and dataset version: the same version (no
    # duplicate), still current with the evaluation that promoted it; a stricter gate does not demote it.
    monkeypatch.setenv("FORGE_EVAL__MIN_RELATIVE_IMPROVEMENT", "0.99")
    again = _materialize(tmp_path, selection=["adapter_evaluation", "adapter_manifest"])
    assert again.success
    assert again.asset_materializations_for_node("adapter_evaluation")[0].metadata["promoted"].value is False
    meta = again.asset_materializations_for_node("adapter_manifest")[0].metadata
    assert meta["version"].value == "v0001" and meta["already_published"].value is True
    assert meta["current"].value == "v0001" and meta["promoted"].value is True
    manifest = read_manifest(settings.paths.manifest)
    assert list(manifest["versions"]) == ["v0001"] and manifest["history"] == ["v0001"]
    assert manifest["versions"]["v0001"]["evaluation"]["reason"].startswith("promoted")

    # The same files for another dataset version are a new version; the stricter gate keeps it unpromoted.
    lora_table = settings.paths.tables / "lora_adapter.json"
    lora_table.write_text(json.dumps({**json.loads(lora_table.read_text()), "dataset_version": "v0002"}))
    second = _materialize(tmp_path, selection=["adapter_evaluation", "adapter_manifest"])
    assert second.success
    manifest = read_manifest(settings.paths.manifest)
    assert manifest["current"] == "v0001" and manifest["versions"]["v0002"]["promoted"] is False
    assert manifest["versions"]["v0002"]["dataset_version"] == "v0002"
    assert "not promoted" in manifest["versions"]["v0002"]["evaluation"]["reason"]
    meta = second.asset_materializations_for_node("adapter_manifest")[0].metadata
    assert meta["version"].value == "v0002" and meta["current"].value == "v0001"
    assert meta["already_published"].value is False
