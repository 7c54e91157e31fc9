"""The versioned dataset catalog: immutable train/validation snapshots of the curated examples.

Split rule (deterministic, no randomness): examples are split by group, never one by one, so that no note and no
conversation has examples on both sides (the sections of one note share words, names and structure: a held-out
section whose siblings were trained on makes the held-out loss optimistic). An example's group is its
`conversation_id`, else its `source_path` (the note), else its own `example_id` (`split_group`). A group goes to
validation iff `int(sha256(salt + group), 16) % 10_000 < validation_ratio * 10_000` (10% of the groups by
default). When that puts fewer than `min_validation_examples` (8 by default) examples there, the train groups
with the smallest hash buckets move to validation until the minimum is met, but this top-up never takes
validation past a third of the examples (ceil(n / 3)); a group that would overshoot is skipped for the next.
When the hash alone puts more than a third of the examples in validation (a few large notes), the validation
groups with the largest buckets go back to train until it is at most a third (one group stays held out).
With one example per group: 61 examples give >= 8 held out, 12 give 4, 5 give 2, 2 give 1 and 1 gives none (no
evaluation possible); a dataset that is one note has no held-out set. Train always keeps at least one group
(if every group hashes into validation, the one with the largest bucket goes to train). Same examples and same
settings always give the same split; a group never changes split when others are added (unless the minimum or
the third cap kicks in). A group holding what a person taught in the playground (an example tagged
`correction` or `choice`) always trains: it is what the person asked the model to learn, not a sample of their
writing to measure it on.

Version id: the first 12 hex digits of sha256 over the sorted example ids, the content hash of the
examples (messages and provenance) and the split settings. Creating a version that exists returns the
stored one unchanged, so re-materializing on the same input is a no-op.

Layout under `<catalog>/`:
- `<version_id>/dataset/`: HF `datasets.DatasetDict({"train", "validation"})` (save_to_disk);
  `train.jsonl`, `validation.jsonl`: one example per line; `version.json`: this version's entry.
  The folder is written atomically.
- `catalog.json`: `{"versions": [entry, ...], "latest": version_id}`, rewritten atomically under a lock.
  Each entry's `path` is relative to the data root (`catalog/<version_id>`), so a copied or moved data root
  keeps working; readers get it back absolute. Entries written before that (absolute paths) are read as
  `<catalog>/<version_id>`, where every version folder has always been.

Quality: each version's entry has `quality`, the distribution of `prepare.scoring`'s per-example score (all,
train, validation): bands, mean, p10, median and the most frequent reasons.

Token statistics use an approximate token count: the number of words and punctuation marks
(regex `\\w+|[^\\w\\s]`) over all message contents. It needs no tokenizer (the base model may not exist
yet) and tracks BPE token counts within a small factor, which is what the statistics are for.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from forge_pipeline.atomic import atomic_directory, locked, write_json_atomic
from forge_pipeline.errors import ForgeError
from forge_pipeline.prepare.pii_decisions import lists_record
from forge_pipeline.records import EXAMPLE_SCHEMA, PERSON_TAUGHT_TAGS, check_schema
from forge_pipeline.settings import ForgeSettings

_TOKEN = re.compile(r"\w+|[^\w\s]")
SPLITS = ("train", "validation")


class CatalogError(ForgeError, ValueError):
    """The catalog or its input is not usable; the message says which file or field."""


def approx_tokens(messages) -> int:
    return sum(len(_TOKEN.findall(m["content"] or "")) for m in messages)


def _bucket(salt: str, example_id: str) -> int:
    return int(hashlib.sha256((salt + example_id).encode("utf-8")).hexdigest(), 16) % 10_000


def split_group(row: dict) -> str:
    """What is held out together: a conversation, else a note, else the example alone (see module docstring)."""
    for field in ("conversation_id", "source_path"):
        if row.get(field):
            return f"{field}:{row[field]}"
    return f"example_id:{row['example_id']}"


def assign_splits(
    example_ids: list[str],
    ratio: float,
    salt: str,
    min_validation: int,
    groups: dict[str, str] | None = None,
    trains: AbstractSet[str] = frozenset(),
) -> dict[str, str]:
    """example_id → "train" | "validation" by the module's split rule; `groups` maps an example_id to its group
    (default: every example its own group); the groups in `trains` are never held out."""
    groups = groups or {}
    members: dict[str, list[str]] = {}
    for eid in example_ids:
        members.setdefault(groups.get(eid, f"example_id:{eid}"), []).append(eid)
    buckets = {group: _bucket(salt, group) for group in members if group not in trains}
    threshold = ratio * 10_000
    held = {group for group, b in buckets.items() if b < threshold}
    cap = -(-len(example_ids) // 3)

    def held_out() -> int:
        return sum(len(members[group]) for group in held)

    # A few large notes hashing into validation would hold out most of the data: the largest buckets go back.
    for _, group in sorted(((buckets[g], g) for g in held), reverse=True):
        if held_out() <= cap or len(held) == 1:
            break
        held.discard(group)
    # The minimum is capped at a third of the data so that a tiny dataset still trains on most of it.
    wanted = min(min_validation, cap)
    for _, group in sorted((b, g) for g, b in buckets.items() if g not in held):
        if held_out() >= wanted or len(held) >= len(members) - 1:
            break
        if held_out() + len(members[group]) <= cap:
            held.add(group)
    if held and len(held) == len(members):
        # A tiny dataset whose groups all hash into validation would leave nothing to train on.
        held.discard(max((b, g) for g, b in buckets.items())[1])
    return {eid: "validation" if group in held else "train" for group, ids in members.items() for eid in ids}


def _content_hash(examples: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    for row in examples.sort("example_id").iter_rows(named=True):
        digest.update(json.dumps(_jsonable(row), ensure_ascii=False, sort_keys=True).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _jsonable(row: dict) -> dict:
    out = dict(row)
    created = out.get("created_at")
    out["created_at"] = created.isoformat() if isinstance(created, datetime) else created
    out["messages"] = [{"role": m["role"], "content": m["content"]} for m in out["messages"]]
    out["tags"] = list(out.get("tags") or [])
    return out


def token_stats(lengths: list[int]) -> dict:
    if not lengths:
        return {"count": 0, "min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    ordered = sorted(lengths)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "count": len(ordered),
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "max": ordered[-1],
    }


def catalog_file(settings: ForgeSettings) -> Path:
    return settings.paths.catalog / "catalog.json"


def read_catalog(settings: ForgeSettings) -> dict:
    """catalog.json with every entry's `path` absolute (see the module docstring)."""
    path = catalog_file(settings)
    if not path.exists():
        return {"versions": [], "latest": None}
    try:
        catalog = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise CatalogError(
            f"{path} line {err.lineno}: not valid JSON ({err.msg}); restore it from the "
            f"version folders' version.json files"
        ) from None
    if not isinstance(catalog, dict) or not isinstance(catalog.get("versions"), list):
        raise CatalogError(
            f"{path}: expected an object with a 'versions' list; restore it from the version "
            "folders' version.json files"
        )
    catalog["versions"] = [_absolute(entry, settings) for entry in catalog["versions"]]
    return catalog


def _absolute(entry: dict, settings: ForgeSettings) -> dict:
    stored = Path(entry.get("path") or "")
    folder = (
        settings.paths.catalog / entry["version_id"]
        if stored.is_absolute() or not entry.get("path")
        else settings.paths.root / stored
    )
    return {**entry, "path": str(folder)}


def _relative(entry: dict, settings: ForgeSettings) -> dict:
    return {**entry, "path": Path(os.path.relpath(entry["path"], settings.paths.root)).as_posix()}


def _write_catalog(settings: ForgeSettings, catalog: dict) -> None:
    write_json_atomic(
        catalog_file(settings), {**catalog, "versions": [_relative(v, settings) for v in catalog["versions"]]}
    )


def list_versions(settings: ForgeSettings) -> list[dict]:
    """Every catalog entry, oldest first."""
    return read_catalog(settings)["versions"]


def load_version(settings: ForgeSettings, version_id: str | None = None):
    """The HF DatasetDict of a version (the latest when `version_id` is None)."""
    import datasets

    catalog = read_catalog(settings)
    version_id = version_id or catalog["latest"]
    if version_id is None:
        raise CatalogError(f"{catalog_file(settings)}: the catalog has no versions yet; materialize dataset_version")
    entry = next((v for v in catalog["versions"] if v["version_id"] == version_id), None)
    if entry is None:
        raise CatalogError(
            f"{catalog_file(settings)}: no version {version_id!r}; known: "
            f"{[v['version_id'] for v in catalog['versions']]}"
        )
    return datasets.load_from_disk(str(Path(entry["path"]) / "dataset"))


def create_dataset_version(examples: pl.DataFrame, settings: ForgeSettings, sources: dict | None = None) -> dict:
    """Snapshot `examples` (EXAMPLE_SCHEMA) as a catalog version and return its entry (see module docstring).

    Rows repeating an example_id are kept once (the first in example_id order): one id must map to one split.
    Columns beyond EXAMPLE_SCHEMA (curation and scrubbing provenance) stay in the prepare/curate tables; a
    version holds only the training record, so its content hash does not change with bookkeeping columns.
    """
    examples = examples.select([c for c in examples.columns if c in EXAMPLE_SCHEMA])
    problems = check_schema(examples, EXAMPLE_SCHEMA)
    if problems:
        raise CatalogError(f"curated examples do not match EXAMPLE_SCHEMA: {'; '.join(problems)}")
    if examples.is_empty():
        raise CatalogError("no examples to version: the curated examples table is empty")
    examples = examples.sort(["example_id", "source", "source_path"], nulls_last=True).unique(
        "example_id", keep="first", maintain_order=True
    )
    cat = settings.catalog
    ids = examples["example_id"].to_list()
    content_hash = _content_hash(examples)
    split_settings = {
        "validation_ratio": cat.validation_ratio,
        "split_salt": cat.split_salt,
        "min_validation_examples": cat.min_validation_examples,
        # Part of the version id: the same examples split by another rule are another version.
        "held_out_together": ["conversation_id", "source_path"],
        "always_trained": list(PERSON_TAUGHT_TAGS),
    }
    version_id = hashlib.sha256(
        json.dumps({"ids": ids, "content": content_hash, "split": split_settings}, sort_keys=True).encode()
    ).hexdigest()[:12]
    root = settings.paths.catalog
    with locked(catalog_file(settings)):
        catalog = read_catalog(settings)
        existing = next((v for v in catalog["versions"] if v["version_id"] == version_id), None)
        if existing is not None and (Path(existing["path"]) / "version.json").exists():
            return existing
        groups = {row["example_id"]: split_group(row) for row in examples.iter_rows(named=True)}
        taught = {
            groups[row["example_id"]]
            for row in examples.select("example_id", "tags").iter_rows(named=True)
            if set(row["tags"] or ()) & set(PERSON_TAUGHT_TAGS)
        }
        split = assign_splits(ids, cat.validation_ratio, cat.split_salt, cat.min_validation_examples, groups, taught)
        examples = examples.with_columns(pl.col("example_id").replace_strict(split).alias("split"))
        parts = {name: examples.filter(pl.col("split") == name).drop("split") for name in SPLITS}
        from forge_pipeline.prepare.scoring import score_examples, score_summary

        # The score of what this version holds (curation's edits scored as edited), over the whole version (a
        # prompt shared across splits is shared), summarised per split and in all.
        scored = score_examples(examples)
        quality = {"all": score_summary(scored)} | {
            name: score_summary(scored.filter(pl.col("split") == name)) for name in SPLITS
        }
        by_source = {name: _source_counts(parts[name]["source"]) for name in SPLITS}
        entry = {
            "version_id": version_id,
            "created_at": datetime.now(UTC).isoformat(),
            "content_hash": content_hash,
            "counts": {
                "train": parts["train"].height,
                "validation": parts["validation"].height,
                "by_source": by_source,
            },
            "split": split_settings,
            "token_stats": {
                name: token_stats([approx_tokens(m) for m in parts[name]["messages"].to_list()]) for name in SPLITS
            },
            "quality": quality,
            "parent": catalog.get("latest"),
            "sources": sources or {},
            # the allow/deny lists (with `forge pii review` decisions) this version was scrubbed with
            "pii_lists": lists_record(settings),
            "path": str(root / version_id),
        }
        try:
            with atomic_directory(root / version_id) as staging:
                _write_version(staging, parts, _relative(entry, settings))
            catalog["versions"] = [v for v in catalog["versions"] if v["version_id"] != version_id] + [entry]
            catalog["latest"] = version_id
            _write_catalog(settings, catalog)
        except OSError as err:
            # Disk full (or quota, or I/O error) mid-write: the staging folder and temp file are already gone
            # and catalog.json still lists only complete versions; say so instead of a bare errno traceback.
            what = (
                "no space left on the device" if err.errno in (errno.ENOSPC, errno.EDQUOT) else err.strerror or str(err)
            )
            raise CatalogError(
                f"{root / version_id}: writing dataset version {version_id} failed ({what}); nothing "
                f"was added to {catalog_file(settings)}, the previous versions are intact. Free space "
                "under the data root and re-materialize dataset_version."
            ) from err
        return entry


def _source_counts(column: pl.Series) -> dict[str, int]:
    return dict(sorted((str(k), int(v)) for k, v in column.value_counts().iter_rows()))


def _write_version(folder: Path, parts: dict[str, pl.DataFrame], entry: dict) -> None:
    import datasets

    records = {name: [_jsonable(row) for row in frame.iter_rows(named=True)] for name, frame in parts.items()}
    features = datasets.Features(
        {
            "example_id": datasets.Value("string"),
            "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "source": datasets.Value("string"),
            "source_path": datasets.Value("string"),
            "conversation_id": datasets.Value("string"),
            "created_at": datasets.Value("string"),
            "tags": [datasets.Value("string")],
        }
    )
    dataset = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_list(rows, features=features)
            if rows
            else datasets.Dataset.from_dict({k: [] for k in features}, features=features)
            for name, rows in records.items()
        }
    )
    # The per-split progress bars only clutter Dagster's logs for a save that takes milliseconds.
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        dataset.save_to_disk(str(folder / "dataset"))
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    for name, rows in records.items():
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_json_atomic(folder / "version.json", entry)


def read_split_ids(version_path: Path) -> dict[str, list[str]]:
    """example_ids of each split as written on disk (the JSONL exports), for leakage checks."""
    return {name: [row["example_id"] for row in rows] for name, rows in _read_split_rows(version_path).items()}


def read_split_groups(version_path: Path) -> dict[str, set[str]]:
    """The groups (`split_group`: conversations, notes) of each split as written on disk, for leakage checks."""
    return {name: {split_group(row) for row in rows} for name, rows in _read_split_rows(version_path).items()}


def _read_split_rows(version_path: Path) -> dict[str, list[dict]]:
    out = {}
    for name in SPLITS:
        path = Path(version_path) / f"{name}.jsonl"
        with open(path, encoding="utf-8") as handle:
            out[name] = [json.loads(line) for line in handle if line.strip()]
    return out
