"""Held-out leakage of the train/validation split, per example (the old rule) vs per note and conversation
(catalog.versions' rule), side by side on the same examples.

For each input: the examples are split both ways with the catalog's settings; for each split it counts the
held-out examples and how many of them come from a note (or conversation) that also has examples in train.
Inputs: vault folders (notes become examples with `build_training_examples` and the default settings, as
`forge check-inputs` does: no scrub, filter or dedup) and/or example tables (`--table`, e.g. a data root's
`tables/curated_examples.parquet`, what the catalog really splits).

Rerun: .venv/bin/python benchmarks/split_bench.py --vault /path/to/vault [...] [--table t.parquet ...]
       [--out benchmarks/results_split_bench.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl

from forge_pipeline.catalog.versions import assign_splits, split_group
from forge_pipeline.settings import load_settings


def leakage(examples: pl.DataFrame, settings) -> dict:
    rows = examples.unique("example_id", keep="first").sort("example_id").to_dicts()
    ids = [r["example_id"] for r in rows]
    groups = {r["example_id"]: split_group(r) for r in rows}
    cat = settings.catalog
    out = {"examples": len(ids), "groups": len(set(groups.values()))}
    held_by = {}
    for name, grouping in (("per_example", None), ("per_note_and_conversation", groups)):
        split = assign_splits(ids, cat.validation_ratio, cat.split_salt, cat.min_validation_examples, grouping)
        trained = {groups[e] for e, s in split.items() if s == "train"}
        held = [e for e, s in split.items() if s == "validation"]
        out[name] = {
            "validation": len(held),
            "validation_with_note_in_train": sum(groups[e] in trained for e in held),
            "groups_on_both_sides": len(trained & {groups[e] for e in held}),
        }
        held_by[name] = set(held)
    out["validation_in_both"] = len(held_by["per_example"] & held_by["per_note_and_conversation"])
    return out


def vault_examples(vault: Path, settings) -> pl.DataFrame:
    from forge_pipeline.ingest.conversations import read_conversations
    from forge_pipeline.ingest.examples import build_training_examples
    from forge_pipeline.ingest.vault import read_vault

    notes, _ = read_vault(vault, settings.ingest)
    empty = Path(settings.paths.root) / "no-conversations"
    empty.mkdir(parents=True, exist_ok=True)
    chats, _ = read_conversations(empty, empty / "interactions", settings.ingest.max_jsonl_line_bytes)
    examples, _ = build_training_examples(notes, chats, settings)
    return examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vault", type=Path, action="append", default=[])
    parser.add_argument("--table", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    settings = load_settings()
    results = []
    for vault in args.vault:
        result = {"input": vault.name, "kind": "vault"}
        results.append(result | leakage(vault_examples(vault, settings), settings))
        print(json.dumps(results[-1]))
    for table in args.table:
        results.append({"input": table.name, "kind": "table"} | leakage(pl.read_parquet(table), settings))
        print(json.dumps(results[-1]))
    if args.out:
        args.out.write_text(json.dumps({"split": settings.catalog.model_dump(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
