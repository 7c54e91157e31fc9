"""The code location loads and its asset graph is exactly the documented one (docs/CONVENTIONS.md, "Asset
graph"): asset keys, edges and groups are a contract that checks, jobs and users' selections rely on."""

import ast
import shutil
import threading
import time
from pathlib import Path

import dagster as dg

from forge_pipeline.definitions import defs
from forge_pipeline.settings import DAGSTER_YAML

REPO = Path(__file__).resolve().parent.parent
DEFS = REPO / "forge_pipeline" / "defs"
TRAINING_POOL = "forge/training"

# Every asset and its complete set of upstream assets (inputs and `deps`).
EXPECTED_PARENTS = {
    "vault_notes": set(),
    "conversations": set(),
    "training_examples": {"vault_notes", "conversations"},
    "scrubbed_examples": {"training_examples", "vault_notes"},
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


def _assets_in_source(path: Path) -> dict[str, ast.expr]:
    """The functions of a module decorated with @dg.asset, read from its source, each with its decorator."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "asset":
                    found[node.name] = decorator
    return found


def test_each_asset_is_defined_in_the_folder_of_its_group_and_names_no_group():
    """defs/<group>/ is the asset group: read from the source files (not from how the loader derives groups), each
    folder defines exactly its group's assets, and no asset names a group that could disagree with its folder."""
    by_folder: dict[str, set[str]] = {}
    for path in DEFS.rglob("*.py"):
        for name, decorator in _assets_in_source(path).items():
            by_folder.setdefault(path.parent.relative_to(DEFS).as_posix(), set()).add(name)
            keywords = decorator.keywords if isinstance(decorator, ast.Call) else []
            assert "group_name" not in {k.arg for k in keywords}, f"{name} ({path.relative_to(REPO)}) names a group"
    assert by_folder == EXPECTED_GROUPS


def test_sensor_schedule_and_checks_are_defined():
    assert defs.resolve_sensor_def("new_interactions_sensor") is not None
    assert defs.resolve_schedule_def("nightly_retrain") is not None
    checked = {key.asset_key.to_user_string() for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"scrubbed_examples", "dataset_version", "adapter_manifest", "gguf_model"} <= checked


def test_the_run_config_of_a_taught_retrain_is_valid_for_the_retrain_job():
    """What the interactions sensor and a fine-tuning job with model 'current' launch (train.continue_from) is
    accepted by the real job's config schema; a misspelt field is not."""
    job = defs.resolve_job_def("forge_retrain_job")
    taught = {"ops": {"lora_adapter": {"config": {"continue_from": "current"}}}}
    assert dg.validate_run_config(job, taught)["ops"]["lora_adapter"]["config"]["continue_from"] == "current"
    misspelt = {"ops": {"lora_adapter": {"config": {"continue_form": "current"}}}}
    try:
        dg.validate_run_config(job, misspelt)
    except dg.DagsterInvalidConfigError as err:
        assert "continue_form" in str(err)
    else:
        raise AssertionError("a misspelt config field was accepted")


def test_two_runs_wanting_the_training_pool_take_turns(tmp_path, monkeypatch):
    """With Forge's dagster.yaml, a second run's step in the training pool waits for the first one's."""
    assert {defs.get_assets_def(key).op.pool for key in ("lora_adapter", "preference_adapter")} == {TRAINING_POOL}
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    release, started, results = threading.Event(), [], {}

    @dg.asset(pool=TRAINING_POOL)
    def first_training() -> None:
        started.append("first")
        release.wait(60)

    @dg.asset(pool=TRAINING_POOL)
    def second_training() -> None:
        started.append("second")

    def until(condition, what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)

    with dg.DagsterInstance.get() as instance:

        def pool():  # what `dagster instance concurrency info` reads: the pool's slots and its waiting steps
            return instance.event_log_storage.get_concurrency_info(TRAINING_POOL)

        def run(asset) -> None:
            results[asset.key.to_user_string()] = dg.materialize([asset], instance=instance, raise_on_error=False)

        runs = [threading.Thread(target=run, args=(asset,)) for asset in (first_training, second_training)]
        runs[0].start()
        until(lambda: started == ["first"], "the first run to start")
        runs[1].start()
        until(lambda: pool().pending_step_count == 1, "the second run to queue for the pool")
        assert pool().slot_count == 1 and started == ["first"]
        release.set()
        for thread in runs:
            thread.join(120)
    assert started == ["first", "second"]
    assert all(result.success for result in results.values()) and len(results) == 2


def test_the_settings_resource_reads_settings_once_per_run_and_leaves_the_environment_alone(tmp_path, monkeypatch):
    import os

    from forge_pipeline.defs.resources import ForgeSettingsResource

    monkeypatch.delenv("FORGE_CONFIG", raising=False)
    config = tmp_path / "forge.yaml"
    config.write_text("train:\n  lora_r: 4\n")
    seen = []

    @dg.asset
    def first(forge: ForgeSettingsResource) -> None:
        seen.extend([forge.get(), forge.get()])

    @dg.asset(deps=[first])
    def second(forge: ForgeSettingsResource) -> None:
        seen.append(forge.get())

    forge = ForgeSettingsResource(data_root=str(tmp_path), config_file=str(config))
    assert dg.materialize([first, second], resources={"forge": forge}).success
    assert len(seen) == 3 and all(settings is seen[0] for settings in seen)  # one read for the whole run
    assert seen[0].train.lora_r == 4 and seen[0].data_root == tmp_path
    assert "FORGE_CONFIG" not in os.environ  # the config file was passed, not planted in the environment
    assert dg.materialize([first], resources={"forge": forge}).success
    assert seen[3] is not seen[0]  # the next run reads the settings afresh (an edited forge.yaml counts)


def test_a_stored_value_loads_as_the_model_an_input_names_and_as_json_otherwise(tmp_path):
    """The tables IO manager validates a JSON value into the pydantic model an input is annotated with (a value
    written before the model existed, with only `version` and `path`, included), writes a model back as the same
    JSON, and hands other inputs the JSON as it is."""
    import json

    from forge_pipeline.catalog.handoff import DatasetVersion
    from forge_pipeline.defs.resources import shared_resources

    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "dataset_version.json").write_text(json.dumps({"version": "v7", "path": str(tmp_path)}))
    seen = {}

    @dg.asset
    def typed(dataset_version: DatasetVersion) -> DatasetVersion:
        seen["typed"] = dataset_version
        return dataset_version

    @dg.asset
    def untyped(dataset_version: dict) -> None:
        seen["untyped"] = dataset_version

    upstream = dg.AssetSpec("dataset_version")
    assert dg.materialize([upstream, typed, untyped], resources=shared_resources(str(tmp_path))).success
    assert seen["typed"] == DatasetVersion(version_id="v7", version="v7", path=tmp_path)
    assert seen["untyped"] == {"version": "v7", "path": str(tmp_path)}
    stored = json.loads((tmp_path / "tables" / "typed.json").read_text())
    assert stored["version_id"] == "v7" and stored["path"] == str(tmp_path)
