"""Teaching on top of a published version: continue its adapter on what is new since its dataset version.

A full retrain re-learns every example from the base model; after a person corrects one reply in the playground
that costs the whole training time again. `train.continue_from` (a published version, or `current`) instead loads
that version's LoRA adapter and trains it on the examples its dataset version did not hold (the correction, new
notes, new chats), each seen `train.teach_repeats` times, beside `train.teach_replay_examples` examples it was
trained on before (a replay, so the adapter does not drift away from what it knew). The validation split and the
evaluation gate are the same as a full run's, so a taught version is promoted by the same rule.

Dagster-free: the asset resolves the parent with `parent_of` (from the adapter manifest it reads) and the
training subprocess selects rows with `teaching_rows`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from forge_pipeline.errors import ForgeError

CURRENT = "current"  # train.continue_from: the version serving now


class TeachError(ForgeError, ValueError):
    """The version to continue cannot be continued (unknown, no adapter recorded, another base) or nothing is
    new since it."""


def _row_key(row: dict) -> str:
    return json.dumps([[t["role"], t["content"]] for t in row["messages"]], ensure_ascii=False)


def parent_of(version: str, manifest: dict, catalog_versions: list[dict], base_model_name: str | None) -> dict:
    """What continuing `version` (a version id of the adapter `manifest`) needs: its adapter folder and the
    dataset version folder it was trained on. Raises TeachError naming `train.continue_from` when the version
    cannot be continued."""
    entry = manifest["versions"].get(version)
    if entry is None:
        raise TeachError(
            f"train.continue_from={version!r}: no such version in the adapter manifest "
            f"(published: {', '.join(sorted(manifest['versions'])) or 'none'})"
        )
    adapter_dir = entry.get("adapter_dir")
    if not adapter_dir or not (Path(adapter_dir) / "adapter_config.json").is_file():
        raise TeachError(
            f"train.continue_from={version!r}: the version records no LoRA adapter folder that still exists "
            f"({adapter_dir or 'none recorded; published by an older Forge'}); train from the base instead "
            "(leave train.continue_from unset, or model 'forge' for a fine-tuning job)"
        )
    trained_base = (entry.get("base_model") or {}).get("name")
    if base_model_name and trained_base and trained_base != base_model_name:
        raise TeachError(
            f"train.continue_from={version!r}: that version was trained on {trained_base}, the base model is now "
            f"{base_model_name}; an adapter cannot move between bases, so train from the base instead"
        )
    dataset = next((v for v in catalog_versions if v["version_id"] == entry.get("dataset_version")), None)
    if dataset is None or not (Path(dataset["path"]) / "train.jsonl").is_file():
        raise TeachError(
            f"train.continue_from={version!r}: its dataset version {entry.get('dataset_version')!r} is not in the "
            "catalog any more, so what is new since it cannot be told; train from the base instead"
        )
    return {"version": version, "adapter_dir": str(adapter_dir), "parent_dataset_dir": str(dataset["path"])}


def teaching_rows(train_rows: list[dict], parent_rows: list[dict], replay: int, repeats: int, seed: int) -> dict:
    """The rows a taught run trains on: each train row its parent dataset did not hold, `repeats` times, and
    `replay` rows it did hold, drawn with `seed`, shuffled together. Raises TeachError when nothing is new."""
    known = {_row_key(row) for row in parent_rows}
    new = [row for row in train_rows if _row_key(row) not in known]
    old = [row for row in train_rows if _row_key(row) in known]
    if not new:
        raise TeachError(
            "train.continue_from: the dataset version holds no train example that the continued version was not "
            "trained on, so there is nothing to teach; add interactions or notes first, or train from the base"
        )
    rng = random.Random(seed)
    replayed = rng.sample(old, min(replay, len(old)))
    rows = [row for row in new for _ in range(repeats)] + replayed
    rng.shuffle(rows)
    return {"rows": rows, "new": len(new), "replayed": len(replayed)}
