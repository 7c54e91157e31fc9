"""The code location loads and its asset graph is exactly the documented one (docs/CONVENTIONS.md, "Asset
graph"): asset keys, edges and groups are a contract that checks, jobs and users' selections rely on."""

from forge_pipeline.definitions import defs

# Every asset and its complete set of upstream assets (inputs and `deps`).
EXPECTED_PARENTS = {
    "vault_notes": set(),
    "conversations": set(),
    "training_examples": {"vault_notes", "conversations"},
    "scrubbed_examples": {"training_examples"},
    "filtered_examples": {"scrubbed_examples"},
    "deduplicated_examples": {"filtered_examples"},
    "curated_examples": {"deduplicated_examples"},
    "dataset_version": {"curated_examples"},
    "embedding_index": {"dataset_version"},
    "base_model": {"dataset_version"},
    "lora_adapter": {"base_model", "dataset_version"},
    "adapter_evaluation": {"lora_adapter", "dataset_version"},
    "gguf_model": {"lora_adapter", "adapter_evaluation"},
    "gguf_adapter": {"lora_adapter", "adapter_evaluation"},
    "adapter_manifest": {"lora_adapter", "adapter_evaluation", "gguf_model", "gguf_adapter"},
    "preference_pairs": set(),
    "preference_adapter": {"preference_pairs", "lora_adapter"},
    "preference_candidate": {"preference_adapter", "dataset_version", "adapter_manifest"},
}

EXPECTED_GROUPS = {
    "ingest": {"vault_notes", "conversations"},
    "prepare": {
        "training_examples",
        "scrubbed_examples",
        "filtered_examples",
        "deduplicated_examples",
        "preference_pairs",
    },
    "curate": {"curated_examples"},
    "catalog": {"dataset_version", "embedding_index"},
    "train": {"base_model", "lora_adapter", "adapter_evaluation", "preference_adapter"},
    "export": {"gguf_model", "gguf_adapter"},
    "serve": {"adapter_manifest", "preference_candidate"},
}


def test_definitions_load_with_exactly_the_contract_asset_keys_each_described():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(EXPECTED_PARENTS)
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.is_materializable, f"{key.to_user_string()} is not materializable"
        assert node.description, f"{key.to_user_string()} has no docstring"


def test_asset_graph_edges_match_the_contract():
    graph = defs.resolve_asset_graph()
    actual = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert actual == EXPECTED_PARENTS


def test_groups_match_the_contract():
    graph = defs.resolve_asset_graph()
    actual: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        actual.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert actual == EXPECTED_GROUPS


def test_sensor_schedule_and_checks_are_defined():
    assert defs.resolve_sensor_def("new_interactions_sensor") is not None
    assert defs.resolve_schedule_def("nightly_retrain") is not None
    checked = {key.asset_key.to_user_string() for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"scrubbed_examples", "dataset_version", "adapter_manifest", "gguf_model"} <= checked
