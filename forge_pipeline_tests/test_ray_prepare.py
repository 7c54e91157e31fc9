"""`runtime.engine: ray`: the prepare chain's PII analysis and embedding as Ray Data map_batches over actor pools,
on a real two-node Ray cluster (conftest.ray_cluster), against the local engine on the shipped sample data."""

from __future__ import annotations

import os
import shutil

import dagster as dg
import polars as pl
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forge_pipeline.defs.ingest.assets import conversations, vault_notes  # noqa: E402
from forge_pipeline.defs.prepare import resources as prepare_resource_module  # noqa: E402
from forge_pipeline.defs.prepare.assets import (  # noqa: E402
    deduplicated_examples,
    filtered_examples,
    scrubbed_examples,
)
from forge_pipeline.defs.prepare.resources import prepare_resources  # noqa: E402
from forge_pipeline.defs.prepare.training_examples import training_examples  # noqa: E402
from forge_pipeline.defs.resources import ForgeSettingsResource, ForgeTablesIOManager  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
PREPARED = ("scrubbed_examples", "filtered_examples", "deduplicated_examples")


def _materialize(assets, data_root, config_file=None) -> dg.ExecuteInProcessResult:
    forge = ForgeSettingsResource(data_root=str(data_root), config_file=str(config_file) if config_file else None)
    result = dg.materialize(
        assets,
        resources={"forge": forge, "io_manager": ForgeTablesIOManager(forge=forge)} | prepare_resources(),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return result


def _prepare(data_root, config_file=None) -> dict:
    result = _materialize(
        [
            dg.AssetSpec("training_examples"),
            dg.AssetSpec("vault_notes"),  # scrubbed_examples reads the vault's people and concepts
            scrubbed_examples,
            filtered_examples,
            deduplicated_examples,
        ],
        data_root,
        config_file,
    )
    return {
        name: {k: v.value for k, v in result.asset_materializations_for_node(name)[0].metadata.items()}
        for name in PREPARED
    }


def _outputs(data_root) -> dict[str, pl.DataFrame]:
    tables = {name: pl.read_parquet(data_root / "tables" / f"{name}.parquet") for name in PREPARED}
    quarantine = {
        f"quarantine/{p.stem}": pl.read_parquet(p).drop("quarantined_at", strict=False)
        for p in sorted((data_root / "quarantine").glob("*.parquet"))
        if p.stem in PREPARED
    }
    detections = {
        f"cache/{p.name}": pl.read_parquet(p).sort("key") for p in (data_root / "cache" / "pii").glob("*.parquet")
    }
    return tables | quarantine | detections


def test_ray_engine_prepares_the_sample_data_exactly_like_the_local_engine(ray_cluster, tmp_path):
    local_root, ray_root = tmp_path / "local", tmp_path / "ray"
    _materialize([vault_notes, conversations, training_examples], local_root)
    (ray_root / "tables").mkdir(parents=True)
    shutil.copy(local_root / "tables" / "training_examples.parquet", ray_root / "tables")
    shutil.copy(local_root / "tables" / "vault_notes.parquet", ray_root / "tables")
    config = tmp_path / "forge-ray.yaml"
    # Two actors of half a CPU per pool: they fit beside Ray Data's own tasks on the two one-CPU nodes.
    config.write_text(
        f"runtime:\n  engine: ray\n  ray_address: '{ray_cluster.address}'\n"
        "  ray_workers: 2\n  ray_worker_cpus: 0.5\n  ray_batch_size: 32\n"
    )

    # The Ray run first, with the process's analyzer/encoder caches empty: it must not build either locally.
    prepare_resource_module._analyzer.cache_clear()
    prepare_resource_module._embedder.cache_clear()
    on_ray = _prepare(ray_root, config)
    assert prepare_resource_module._analyzer.cache_info().currsize == 0
    assert prepare_resource_module._embedder.cache_info().currsize == 0
    assert on_ray["scrubbed_examples"]["messages_analyzed"] > 0
    assert on_ray["deduplicated_examples"]["new_examples"] > 0
    local = _prepare(local_root)

    ray_outputs, local_outputs = _outputs(ray_root), _outputs(local_root)
    assert set(ray_outputs) == set(local_outputs) and any(k.startswith("cache/") for k in local_outputs)
    for name, frame in local_outputs.items():  # same detections, same scrub, same filter and dedup decisions
        assert ray_outputs[name].equals(frame), name
    assert all(local_outputs[name].height for name in PREPARED)
    assert local_outputs["quarantine/deduplicated_examples"].height > 0  # dedup decided something to compare
    for name in PREPARED:
        assert on_ray[name]["dagster/row_count"] == local[name]["dagster/row_count"]

    # Incremental: a second Ray run analyzes and embeds nothing new, and writes the same tables.
    again = _prepare(ray_root, config)
    assert again["scrubbed_examples"]["messages_analyzed"] == 0
    assert again["deduplicated_examples"]["new_examples"] == 0
    assert all(_outputs(ray_root)[name].equals(local_outputs[name]) for name in PREPARED)
