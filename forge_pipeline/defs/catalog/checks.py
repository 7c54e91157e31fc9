"""Contracts of a dataset version, verified on the files written to disk (what training will read)."""

from __future__ import annotations

import json

import dagster as dg

from forge_pipeline.catalog.handoff import DatasetVersion
from forge_pipeline.catalog.versions import SPLITS, read_split_groups, read_split_ids


@dg.asset_check(asset="dataset_version", blocking=True)
def dataset_version_no_split_leakage(dataset_version: DatasetVersion) -> dg.AssetCheckResult:
    """No example_id, and no note (source_path) or conversation (conversation_id), has examples in both train
    and validation: a held-out section whose siblings were trained on would make the held-out loss optimistic."""
    ids = read_split_ids(dataset_version.path)
    groups = read_split_groups(dataset_version.path)
    leaked = sorted(set(ids["train"]) & set(ids["validation"]))
    shared = sorted(groups["train"] & groups["validation"])
    return dg.AssetCheckResult(
        passed=not leaked and not shared,
        metadata={
            "train": len(ids["train"]),
            "validation": len(ids["validation"]),
            "leaked": len(leaked),
            "leaked_ids": dg.MetadataValue.json(leaked[:20]),
            "groups_on_both_sides": len(shared),
            # the notes' paths are scrubbed like the examples, so naming them here puts no PII in the log
            "shared_groups": dg.MetadataValue.json(shared[:20]),
        },
    )


@dg.asset_check(asset="dataset_version", blocking=True)
def dataset_version_has_user_and_assistant_turns(dataset_version: DatasetVersion) -> dg.AssetCheckResult:
    """Every example in every split has at least one user and one assistant message."""
    bad: list[str] = []
    for name in SPLITS:
        with open(dataset_version.path / f"{name}.jsonl", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                roles = {m["role"] for m in json.loads(line)["messages"]}
                if not {"user", "assistant"} <= roles:
                    bad.append(f"{name}.jsonl:{number}")
    return dg.AssetCheckResult(
        passed=not bad, metadata={"examples_missing_a_turn": dg.MetadataValue.json(bad[:20]), "count": len(bad)}
    )
