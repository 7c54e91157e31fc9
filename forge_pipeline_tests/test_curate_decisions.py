"""The curation database and applying its decisions to an example table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import polars as pl
import pytest

from forge_pipeline.curate.apply import apply_decisions
from forge_pipeline.curate.decisions import DecisionConflict, DecisionError, DecisionStore
from forge_pipeline.records import EXAMPLE_SCHEMA, example_id_for, examples_frame
from forge_pipeline.settings import load_settings


def chat(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def example_rows() -> list[dict]:
    chats = [
        chat("What is a vault?", "A folder of Markdown notes."),
        chat("Who is <PERSON>?", "A colleague from the lab."),
        chat("Say hi", "Hi!"),
        chat("What is LoRA?", "Low-rank adapters for fine-tuning."),
    ]
    sources = ["vault", "conversation", "conversation", "vault"]
    return [
        {
            "example_id": example_id_for(m),
            "messages": m,
            "source": s,
            "source_path": f"notes/{i}.md",
            "conversation_id": f"c{i}",
            "created_at": datetime(2026, 1, i + 1, tzinfo=UTC),
            "tags": [s, "t"],
        }
        for i, (m, s) in enumerate(zip(chats, sources))
    ]


@pytest.fixture
def store(tmp_path):
    settings = load_settings(data_root=tmp_path)
    with DecisionStore(settings.paths.curation_db) as s:
        yield s


def test_approve_reject_edit_and_undo_step_back_one_change_at_a_time(store):
    a, b, c = (r["example_id"] for r in example_rows()[:3])
    store.decide(a, "approved", reviewer="ann")
    store.decide(b, "rejected", reason="names a real person")
    original = example_rows()[2]["messages"]
    store.decide(c, "edited", messages=chat("Say hi", "Hello there!"), original_messages=original)
    store.decide(a, "rejected", reason="changed my mind")
    assert store.counts() == {"approved": 0, "rejected": 2, "edited": 1, "skipped": 0}
    edited = store.get(c)
    assert edited.messages[1]["content"] == "Hello there!" and edited.original_messages == original

    assert store.undo() == a  # back to the approval, not to nothing
    assert store.get(a).status == "approved" and store.get(a).reviewer == "ann"
    assert store.undo() == c and store.get(c) is None
    assert store.undo() == b and store.get(b) is None
    assert store.undo() == a and store.get(a) is None
    assert store.undo() is None


def test_decisions_survive_reopening_the_database(tmp_path):
    path = load_settings(data_root=tmp_path).paths.curation_db
    with DecisionStore(path) as first:
        first.decide("abc", "skipped")
        first.decide("def", "approved")
    with DecisionStore(path) as second:  # a later review session resumes from here
        assert {k: d.status for k, d in second.all().items()} == {"abc": "skipped", "def": "approved"}
        assert second.undo() is None  # undo steps back this session's own changes only
        assert second.history_length() == 2  # the history itself is kept


def test_two_sessions_at_once_neither_overwrites_nor_undoes_the_other(tmp_path):
    path = load_settings(data_root=tmp_path).paths.curation_db
    with DecisionStore(path) as ann, DecisionStore(path) as bob:
        seen_by_ann = ann.get("x")  # both look at the unreviewed example x
        seen_by_bob = bob.get("x")
        bob.decide("x", "rejected", reason="private", reviewer="bob", expected=seen_by_bob)
        with pytest.raises(DecisionConflict, match="x was changed by another session meanwhile .*rejected by bob"):
            ann.decide("x", "approved", reviewer="ann", expected=seen_by_ann)
        assert ann.get("x").status == "rejected"  # bob's decision stands
        ann.decide("y", "approved", reviewer="ann")
        assert ann.undo() == "y" and ann.undo() is None  # ann's own change only; bob's rejection stays
        assert bob.get("x").status == "rejected"
        ann.decide("x", "approved", reviewer="ann", expected=ann.get("x"))  # having seen it, ann may overrule
        with pytest.raises(DecisionConflict, match="not undone"):
            bob.undo()  # bob's undo would silently erase ann's newer decision
        assert bob.get("x").status == "approved"


def test_a_locked_or_damaged_database_fails_fast_naming_the_file(tmp_path):
    import sqlite3
    import time

    path = load_settings(data_root=tmp_path).paths.curation_db
    DecisionStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        with DecisionStore(path) as store:
            started = time.monotonic()
            with pytest.raises(DecisionError, match=f"{path}: the curation database is locked"):
                store.decide("x", "approved")
            assert time.monotonic() - started < 10  # not the 30 s sqlite3 wait it used to be
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DecisionError, match=f"{damaged}: not a readable curation database"):
        DecisionStore(damaged)


def test_invalid_decisions_are_refused_with_the_field_named(store):
    with pytest.raises(DecisionError, match="reason is required"):
        store.decide("x", "rejected")
    with pytest.raises(DecisionError, match="status"):
        store.decide("x", "maybe")
    with pytest.raises(DecisionError, match=r"messages\[1\].content is empty"):
        store.decide("x", "edited", messages=chat("q", "  "))
    assert store.all() == {} and store.history_length() == 0


def test_export_then_import_reproduces_decisions_and_bad_lines_change_nothing(store, tmp_path):
    store.decide("a1", "approved", reviewer="ann")
    store.decide("b2", "edited", messages=chat("q", "better"), original_messages=chat("q", "worse"))
    out = tmp_path / "decisions.jsonl"
    assert store.export_jsonl(out) == 2
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {line["example_id"] for line in lines} == {"a1", "b2"}

    with DecisionStore(tmp_path / "other.sqlite") as other:
        assert other.import_jsonl(out) == 2
        assert other.get("b2").messages == chat("q", "better")
        assert other.get("b2").original_messages == chat("q", "worse")
        bad = tmp_path / "bad.jsonl"
        bad.write_text(
            json.dumps({"example_id": "c3", "status": "approved"})
            + "\n"
            + json.dumps({"example_id": "d4", "status": "rejected"})
            + "\n"
        )
        with pytest.raises(DecisionError, match=r"bad.jsonl:2: field reason is required"):
            other.import_jsonl(bad)
        assert other.get("c3") is None  # the whole file is checked before anything is written


def test_approve_all_keeps_existing_rejections(store):
    store.decide("keep", "rejected", reason="private")
    store.decide("was_skipped", "skipped")
    assert store.approve_all(["keep", "was_skipped", "new"]) == 2
    assert store.get("keep").status == "rejected"
    assert store.get("was_skipped").status == "approved" and store.get("new").status == "approved"


def test_apply_decisions_keeps_approved_edits_content_and_quarantines_rejections(store):
    rows = example_rows()
    frame = examples_frame(rows).with_columns(
        pl.Series("pii_replacements", [[], [{"entity_type": "PERSON", "placeholder": "<PERSON>"}], [], []])
    )
    ids = [r["example_id"] for r in rows]
    store.decide(ids[0], "approved")
    store.decide(ids[1], "rejected", reason="names a real person")
    new_messages = chat("Say hi", "Hello there!")
    store.decide(ids[2], "edited", messages=new_messages, original_messages=rows[2]["messages"])

    curated, quarantine, counts = apply_decisions(frame, store.all(), include_unreviewed=True)
    assert counts == {
        "approved": 1,
        "rejected": 1,
        "edited": 1,
        "skipped": 0,
        "unreviewed": 1,
        "included": 3,
        "excluded_unreviewed": 0,
    }
    assert curated.schema["created_at"] == EXAMPLE_SCHEMA["created_at"]
    assert "pii_replacements" in curated.columns  # extra columns pass through
    by_status = {r["curation_status"]: r for r in curated.iter_rows(named=True)}
    edited = by_status["edited"]
    assert edited["example_id"] == example_id_for(new_messages) != ids[2]
    assert edited["edited_from"] == ids[2]
    assert edited["messages"] == new_messages
    assert edited["source_path"] == rows[2]["source_path"] and edited["conversation_id"] == "c2"
    assert by_status["unreviewed"]["example_id"] == ids[3]
    q = quarantine.frame()
    assert q.height == 1 and q["reason"][0] == "rejected_by_reviewer" and q["detail"][0] == "names a real person"
    assert q["record_id"][0] == ids[1] and q["file"][0] == "notes/1.md"

    curated, quarantine, counts = apply_decisions(frame, store.all(), include_unreviewed=False)
    assert curated.height == 2 and counts["excluded_unreviewed"] == 1
    assert quarantine.reason_counts() == {"rejected_by_reviewer": 1, "not_reviewed": 1}


def test_apply_decisions_names_missing_columns():
    with pytest.raises(ValueError, match="messages"):
        apply_decisions(pl.DataFrame({"example_id": ["a"]}), {}, include_unreviewed=True)
