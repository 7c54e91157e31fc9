"""Feedback assets on a real Dagster instance: DPO skipped below the threshold, trained through Pipes
above it, and the sensor requesting it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.serve.interactions import InteractionIn, InteractionStore  # noqa: E402


@pytest.mark.slow  # presidio loads for the one pair: ~30 s on the shared 2-core machine
def test_pairs_materialize_and_dpo_skips_below_threshold_with_the_reason(tmp_path, monkeypatch):
    from forge_pipeline.definitions import build_definitions
    from forge_pipeline.settings import load_settings
    from forge_pipeline.train.outputs import write_lora_adapter

    root = tmp_path / "root"
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(tmp_path / "no_conversations"))
    settings = load_settings(data_root=root)
    settings.paths.ensure()
    store = InteractionStore(settings.paths.interactions)
    store.append(
        InteractionIn(
            messages=[
                {"role": "user", "content": "Plan the migration?"},
                {"role": "assistant", "content": "Migrate everything tonight."},
            ],
            rating="down",
            corrected_reply="Write the rollback step first, then migrate one job.",
        )
    )
    write_lora_adapter(
        settings,
        {
            "adapter_dir": str(tmp_path / "none"),
            "base_model_dir": str(tmp_path),
            "base_model_name": "x",
            "is_demo_model": True,
            "mlflow_run_id": None,
            "dataset_version": "v",
            "metrics": {},
        },
    )
    (settings.paths.tables / "dataset_version.json").write_text('{"version_id": "v", "path": "nowhere"}')
    defs = build_definitions(str(root))
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[
            dg.AssetKey("preference_pairs"),
            dg.AssetKey("preference_adapter"),
            dg.AssetKey("preference_candidate"),
        ],
    )
    assert result.success
    pairs_meta = result.asset_materializations_for_node("preference_pairs")[0].metadata
    assert pairs_meta["dagster/row_count"].value == 1 and pairs_meta["by_kind"].value == {"correction": 1}
    adapter_meta = result.asset_materializations_for_node("preference_adapter")[0].metadata
    assert adapter_meta["trained"].value is False
    assert "fewer than feedback.min_pairs=16" in adapter_meta["skipped_because"].value
    assert (settings.paths.tables / "preference_pairs.parquet").is_file()
    candidate_meta = result.asset_materializations_for_node("preference_candidate")[0].metadata
    assert candidate_meta["published"].value is False and "min_pairs" in candidate_meta["skipped_because"].value


def test_sensor_requests_dpo_once_enough_pairs_are_stored(tmp_path, monkeypatch):
    import polars as pl

    from forge_pipeline.defs.resources import ForgeSettingsResource
    from forge_pipeline.defs.serve.sensors import new_interactions_sensor
    from forge_pipeline.feedback.pairs import PAIR_SCHEMA

    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(tmp_path / "no_conversations"))
    monkeypatch.setenv("FORGE_FEEDBACK__MIN_PAIRS", "2")
    forge = ForgeSettingsResource(data_root=str(tmp_path / "root"))
    settings = forge.get()
    store = InteractionStore(settings.paths.interactions)
    store.append(
        InteractionIn(messages=[{"role": "user", "content": "q"}], choice={"replies": ["a", "b"], "chosen": 0})
    )
    with dg.DagsterInstance.ephemeral() as instance:

        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"forge": forge})
            return new_interactions_sensor(context), context.cursor

        first, cursor = tick(None)  # no pairs table yet: only the data refresh
        assert isinstance(first, dg.RunRequest) and first.job_name == "forge_data_job"
        table = settings.paths.tables / "preference_pairs.parquet"
        pl.DataFrame({"pair_id": ["p1", "p2"]}).with_columns(
            *[pl.lit(None, dtype).alias(name) for name, dtype in PAIR_SCHEMA.items() if name != "pair_id"]
        ).write_parquet(table)
        second, cursor = tick(cursor)  # no new records, but enough stored pairs: DPO keyed on the pairs
        assert isinstance(second, dg.RunRequest) and second.job_name == "forge_feedback_job"
        assert second.run_key.startswith("feedback-pairs-")
        store.append(InteractionIn(messages=[{"role": "user", "content": "r"}], rating="up"))
        third, cursor = tick(cursor)  # new records: the refresh recomputes the pairs before any DPO
        assert isinstance(third, dg.RunRequest) and third.job_name == "forge_data_job"
        fourth, cursor = tick(cursor)
        assert fourth.run_key == second.run_key  # same pairs: Dagster launches it once


@pytest.mark.slow
def test_enough_pairs_train_dpo_out_of_process_through_pipes(tmp_path, monkeypatch):
    from forge_pipeline.definitions import build_definitions
    from forge_pipeline.settings import load_settings
    from forge_pipeline.train.outputs import write_lora_adapter
    from forge_pipeline_tests.model_fixtures import build_random_lora_adapter, build_tiny_llama_for_tests

    root = tmp_path / "root"
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(tmp_path / "no_conversations"))
    monkeypatch.setenv("FORGE_FEEDBACK__MIN_PAIRS", "4")
    monkeypatch.setenv("FORGE_FEEDBACK__MAX_STEPS", "2")
    monkeypatch.setenv("FORGE_FEEDBACK__MAX_LENGTH", "128")
    settings = load_settings(data_root=root)
    settings.paths.ensure()
    base = build_tiny_llama_for_tests(tmp_path / "base")
    sft = build_random_lora_adapter(base, tmp_path / "sft", r=8)
    write_lora_adapter(
        settings,
        {
            "adapter_dir": str(sft),
            "base_model_dir": str(base),
            "base_model_name": "tiny",
            "is_demo_model": True,
            "mlflow_run_id": None,
            "dataset_version": "v",
            "metrics": {},
        },
    )
    store = InteractionStore(settings.paths.interactions)
    for question, good, bad in [
        ("How do I plan a database migration?", "Write the rollback step first.", "Just run it on Friday night."),
        ("Should I take the team lead role?", "Only if helping others do deep work energises you.", "Yes, money."),
        ("What did the March incident teach me?", "The incident commander should not debug.", "Nothing at all."),
        ("How long should my notes be?", "Short and linked often.", "As long as a novel, never linked."),
    ]:
        store.append(
            InteractionIn(
                messages=[{"role": "user", "content": question}], choice={"replies": [bad, good], "chosen": 1}
            )
        )
    result = (
        build_definitions(str(root))
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(
            instance=dg.DagsterInstance.ephemeral(),
            asset_selection=[dg.AssetKey("preference_pairs"), dg.AssetKey("preference_adapter")],
        )
    )
    assert result.success
    meta = result.asset_materializations_for_node("preference_adapter")[0].metadata
    assert meta["trained"].value is True and meta["global_step"].value == 2 and meta["pairs"].value == 4
    stored = json.loads((settings.paths.tables / "preference_adapter.json").read_text())
    assert stored["kind"] == "dpo" and (Path(stored["adapter_dir"]) / "adapter_model.safetensors").is_file()
