"""The dataset catalog: deterministic disjoint splits, content-addressed versions, a history in catalog.json."""

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from forge_pipeline.catalog.versions import (
    CatalogError,
    approx_tokens,
    assign_splits,
    create_dataset_version,
    list_versions,
    load_version,
    read_split_groups,
    read_split_ids,
    split_group,
)
from forge_pipeline.records import example_id_for, examples_frame


def _examples(n: int, start: int = 0) -> pl.DataFrame:
    rows = []
    for i in range(start, start + n):
        messages = [
            {"role": "user", "content": f"question {i}?"},
            {"role": "assistant", "content": f"answer number {i}."},
        ]
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": "vault" if i % 2 else "conversation",
                "source_path": f"n{i}.md",
                "conversation_id": None,
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                "tags": ["t"],
            }
        )
    return examples_frame(rows)


def test_split_is_deterministic_disjoint_and_stable_when_data_grows():
    ids = [f"id{i:04d}" for i in range(2000)]
    split = assign_splits(ids, 0.1, "forge", 1)
    assert split == assign_splits(list(reversed(ids)), 0.1, "forge", 1)
    share = sum(s == "validation" for s in split.values()) / len(ids)
    assert 0.08 < share < 0.12
    grown = assign_splits(ids + [f"new{i}" for i in range(100)], 0.1, "forge", 1)
    assert all(grown[i] == split[i] for i in ids)  # adding data never moves an example across splits
    assert assign_splits(ids, 0.1, "other salt", 1) != split


def test_minimum_validation_is_met_deterministically():
    ids = [f"x{i}" for i in range(5)]
    split = assign_splits(ids, 0.0, "forge", 2)
    assert sum(s == "validation" for s in split.values()) == 2
    assert split == assign_splits(ids[::-1], 0.0, "forge", 2)
    assert assign_splits(["only"], 0.999, "forge", 1) == {"only": "train"}  # train is never left empty
    two = assign_splits(["a", "b"], 0.999, "forge", 0)
    assert sorted(two.values()) == ["train", "validation"]
    assert assign_splits(["only"], 0.0, "forge", 1) == {"only": "train"}  # train keeps at least one


def _sections(notes: int, per_note: int, conversations: int = 0, turns: int = 0) -> pl.DataFrame:
    """`per_note` examples from each of `notes` notes and `turns` examples from each of `conversations` chats."""
    rows = []
    for origin, count, each in (("vault", notes, per_note), ("conversation", conversations, turns)):
        for n in range(count):
            for k in range(each):
                messages = [
                    {"role": "user", "content": f"{origin} {n}, part {k}?"},
                    {"role": "assistant", "content": f"the {origin} {n} says {k}."},
                ]
                rows.append(
                    {
                        "example_id": example_id_for(messages),
                        "messages": messages,
                        "source": origin,
                        "source_path": f"notes/n{n}.md" if origin == "vault" else "chats.jsonl",
                        "conversation_id": f"c{n}" if origin == "conversation" else None,
                        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
                        "tags": [],
                    }
                )
    return examples_frame(rows)


def test_split_holds_out_whole_notes_and_conversations():
    frame = _sections(notes=60, per_note=5, conversations=40, turns=3)
    groups = {row["example_id"]: split_group(row) for row in frame.iter_rows(named=True)}
    # Every conversation shares one file: it is the conversation, not the file, that is held out together.
    assert len(set(groups.values())) == 100
    split = assign_splits(list(groups), 0.1, "forge", 8, groups)
    sides: dict[str, set[str]] = {}
    for eid, group in groups.items():
        sides.setdefault(group, set()).add(split[eid])
    assert all(len(s) == 1 for s in sides.values())  # no note or conversation on both sides
    held = [g for g, s in sides.items() if s == {"validation"}]
    assert any(g.startswith("source_path:") for g in held) and any(g.startswith("conversation_id:") for g in held)
    assert split == assign_splits(list(reversed(groups)), 0.1, "forge", 8, groups)  # order does not matter
    # Without groups (every example alone), the same data puts sections of one note on both sides.
    alone = assign_splits(list(groups), 0.1, "forge", 8)
    notes = {}
    for eid, group in groups.items():
        notes.setdefault(group, set()).add(alone[eid])
    assert any(len(s) == 2 for s in notes.values())


def test_grouped_split_minimum_and_caps():
    # Ratio 0: the top-up holds whole notes out until the minimum is met, never past a third of the examples.
    frame = _sections(notes=6, per_note=4)
    groups = {row["example_id"]: split_group(row) for row in frame.iter_rows(named=True)}
    split = assign_splits(list(groups), 0.0, "forge", 8, groups)
    assert sum(s == "validation" for s in split.values()) == 8
    # Nearly everything hashes into validation: a third at most is held out, and train keeps at least one note.
    split = assign_splits(list(groups), 0.999, "forge", 0, groups)
    assert 0 < sum(s == "validation" for s in split.values()) <= 8
    one_note = _sections(notes=1, per_note=5)
    groups = {row["example_id"]: split_group(row) for row in one_note.iter_rows(named=True)}
    assert set(assign_splits(list(groups), 0.5, "forge", 8, groups).values()) == {"train"}


def test_what_a_person_taught_always_trains_with_its_whole_conversation(settings):
    """A conversation holding a correction or a choice is never held out: the person asked the model to learn it.
    Tag every conversation the hash held out, and they all train; others are held out in their place."""
    frame = _sections(notes=0, per_note=1, conversations=40, turns=2)
    untagged = create_dataset_version(frame, settings, {})
    held = {g.removeprefix("conversation_id:") for g in read_split_groups(Path(untagged["path"]))["validation"]}
    assert held
    tagged = frame.with_columns(
        pl.when(pl.col("conversation_id").is_in(list(held)))
        .then(pl.lit(["correction"]))
        .otherwise(pl.col("tags"))
        .alias("tags")
    )
    entry = create_dataset_version(tagged, settings, {})
    groups = read_split_groups(Path(entry["path"]))
    assert {f"conversation_id:{c}" for c in held} <= groups["train"]
    assert groups["validation"] and not groups["train"] & groups["validation"]
    assert entry["split"]["always_trained"] == ["correction", "choice"]


def test_version_keeps_each_note_on_one_side(settings):
    entry = create_dataset_version(_sections(notes=30, per_note=4), settings, {})
    groups = read_split_groups(Path(entry["path"]))
    assert groups["validation"] and not groups["train"] & groups["validation"]
    assert entry["split"]["held_out_together"] == ["conversation_id", "source_path"]


def test_version_written_and_read_back(settings):
    examples = _examples(40)
    entry = create_dataset_version(examples, settings, {"curated_examples": {"rows": 40}})
    folder = Path(entry["path"])
    assert folder == settings.paths.catalog / entry["version_id"]
    assert entry["counts"]["train"] + entry["counts"]["validation"] == 40 and entry["counts"]["validation"] >= 1
    assert sum(entry["counts"]["by_source"]["train"].values()) == entry["counts"]["train"]
    ids = read_split_ids(folder)
    assert not set(ids["train"]) & set(ids["validation"])
    assert sorted(ids["train"] + ids["validation"]) == sorted(examples["example_id"])
    dataset = load_version(settings, entry["version_id"])
    assert dataset["train"].num_rows == entry["counts"]["train"]
    first = dataset["train"][0]
    assert first["messages"][0]["role"] == "user" and first["created_at"].startswith("2026-01-01")
    assert json.loads((folder / "version.json").read_text())["version_id"] == entry["version_id"]
    stats = entry["token_stats"]["train"]
    assert stats["min"] <= stats["p50"] <= stats["p95"] <= stats["max"] and stats["count"] == entry["counts"]["train"]
    assert approx_tokens([{"role": "user", "content": "question 1?"}]) == 3
    assert not list(settings.paths.catalog.glob(".*partial"))  # no staging folder left behind


def test_same_input_same_version_and_changed_input_new_version(settings):
    first = create_dataset_version(_examples(30), settings, {})
    again = create_dataset_version(_examples(30).sample(fraction=1.0, shuffle=True, seed=1), settings, {})
    assert again == first
    assert len(list_versions(settings)) == 1
    changed = create_dataset_version(_examples(31), settings, {})
    assert changed["version_id"] != first["version_id"] and changed["parent"] == first["version_id"]
    versions = list_versions(settings)
    assert [v["version_id"] for v in versions] == [first["version_id"], changed["version_id"]]
    assert Path(first["path"], "train.jsonl").exists()  # the old version stays on disk
    assert load_version(settings)["train"].num_rows + load_version(settings)["validation"].num_rows == 31
    # Same ids but an edited provenance column is different content.
    edited = _examples(31).with_columns(pl.lit("elsewhere.md").alias("source_path"))
    assert create_dataset_version(edited, settings, {})["version_id"] not in {v["version_id"] for v in versions}


def test_duplicate_ids_are_versioned_once(settings):
    examples = pl.concat([_examples(10), _examples(3)])
    entry = create_dataset_version(examples, settings, {})
    assert entry["counts"]["train"] + entry["counts"]["validation"] == 10


def test_bad_input_gives_clear_errors(settings):
    with pytest.raises(CatalogError, match="missing column tags"):
        create_dataset_version(_examples(3).drop("tags"), settings, {})
    with pytest.raises(CatalogError, match="empty"):
        create_dataset_version(_examples(0), settings, {})
    with pytest.raises(CatalogError, match="no versions yet"):
        load_version(settings)
    settings.paths.catalog.mkdir(parents=True)
    (settings.paths.catalog / "catalog.json").write_text("{broken")
    with pytest.raises(CatalogError, match="catalog.json line 1"):
        list_versions(settings)


def test_a_copied_data_root_keeps_its_catalog_working(tmp_path):
    import shutil

    from typer.testing import CliRunner

    from forge_pipeline.cli import app
    from forge_pipeline.settings import load_settings

    old = load_settings(data_root=tmp_path / "old")
    entry = create_dataset_version(_examples(20), old, {})
    stored = json.loads((old.paths.catalog / "catalog.json").read_text())["versions"][0]["path"]
    assert stored == f"catalog/{entry['version_id']}"  # relative to the data root
    shutil.copytree(tmp_path / "old", tmp_path / "moved")
    shutil.rmtree(tmp_path / "old")
    moved = load_settings(data_root=tmp_path / "moved")
    assert list_versions(moved)[0]["path"] == str(moved.paths.catalog / entry["version_id"])
    assert load_version(moved)["train"].num_rows == entry["counts"]["train"]
    shown = CliRunner().invoke(app, ["--data-root", str(tmp_path / "moved"), "dataset", "show", "latest"])
    assert shown.exit_code == 0, shown.output
    assert f"examples: train {entry['counts']['train']}" in shown.output


def test_catalogs_written_with_absolute_paths_are_still_read(settings):
    entry = create_dataset_version(_examples(12), settings, {})
    catalog_path = settings.paths.catalog / "catalog.json"
    catalog = json.loads(catalog_path.read_text())
    catalog["versions"][0]["path"] = "/somewhere/that/moved/" + entry["version_id"]  # as older releases wrote
    catalog_path.write_text(json.dumps(catalog))
    assert list_versions(settings)[0]["path"] == str(settings.paths.catalog / entry["version_id"])
    assert load_version(settings)["train"].num_rows == entry["counts"]["train"]


def test_status_names_a_truncated_catalog_and_what_to_do(settings):
    from typer.testing import CliRunner

    from forge_pipeline.cli import app

    create_dataset_version(_examples(12), settings, {})
    catalog_path = settings.paths.catalog / "catalog.json"
    catalog_path.write_text(catalog_path.read_text()[:40])
    for command in (["status"], ["datasets"], ["dataset", "show", "latest"]):
        result = CliRunner().invoke(app, ["--data-root", str(settings.data_root), *command])
        assert result.exit_code == 1, (command, result.output)
        assert f"{catalog_path} line " in result.output and ": not valid JSON" in result.output, command
        assert "restore it from the version folders' version.json files" in result.output, command
