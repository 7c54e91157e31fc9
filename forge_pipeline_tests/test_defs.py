"""The code location loads and its asset graph is the one DESIGN.md promises (asset keys are a contract)."""

import dagster as dg

from forge_pipeline.definitions import defs

EXPECTED_EDGES = {
    "training_examples": {"vault_notes", "conversations"},
    "scrubbed_examples": {"training_examples"},
    "filtered_examples": {"scrubbed_examples"},
    "deduplicated_examples": {"filtered_examples"},
    "curated_examples": {"deduplicated_examples"},
    "dataset_version": {"curated_examples"},
    "embedding_index": {"dataset_version"},
    "lora_adapter": {"dataset_version", "base_model"},
    "adapter_evaluation": {"lora_adapter"},
    "gguf_model": {"adapter_evaluation"},
    "gguf_adapter": {"adapter_evaluation"},
    "adapter_manifest": {"gguf_model", "gguf_adapter"},
    "preference_adapter": {"preference_pairs", "lora_adapter"},
    "preference_candidate": {"preference_adapter", "dataset_version", "adapter_manifest"},
}

EXPECTED_GROUPS = {
    "vault_notes": "ingest", "conversations": "ingest",
    "scrubbed_examples": "prepare", "filtered_examples": "prepare", "deduplicated_examples": "prepare",
    "dataset_version": "catalog", "lora_adapter": "train",
    "embedding_index": "catalog",
    "gguf_model": "export", "gguf_adapter": "export",
    "preference_pairs": "prepare", "preference_adapter": "train", "preference_candidate": "serve",
}


def test_definitions_load_and_every_asset_has_a_description():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert set(EXPECTED_EDGES) | {"vault_notes", "conversations"} <= keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert node.description, f"{key.to_user_string()} has no docstring"


def test_asset_graph_edges_match_design():
    graph = defs.resolve_asset_graph()
    for asset, parents in EXPECTED_EDGES.items():
        actual = {p.to_user_string() for p in graph.get(dg.AssetKey(asset)).parent_keys}
        assert parents <= actual, f"{asset}: expected parents {parents}, got {actual}"


def test_groups_match_design():
    graph = defs.resolve_asset_graph()
    for asset, group in EXPECTED_GROUPS.items():
        assert graph.get(dg.AssetKey(asset)).group_name == group, asset


def test_sensor_schedule_and_checks_are_defined():
    assert defs.resolve_sensor_def("new_interactions_sensor") is not None
    assert defs.resolve_schedule_def("nightly_retrain") is not None
    checked = {key.asset_key.to_user_string() for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"scrubbed_examples", "dataset_version", "adapter_manifest", "gguf_model"} <= checked
