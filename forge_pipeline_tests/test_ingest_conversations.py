"""Conversation readers: messages JSONL, ChatGPT export trees and interaction logs, with exact quarantine lines."""

import json
from pathlib import Path

import polars as pl
import pytest

from forge_pipeline.ingest.conversations import (
    CONVERSATIONS_SCHEMA,
    ConversationError,
    chatgpt_active_path,
    normalize_messages,
    read_chatgpt_export,
    read_conversations,
    read_messages_jsonl,
)
from forge_pipeline.records import Quarantine


def _node(node_id, parent, role=None, text=None, children=()):
    message = None if role is None else {"author": {"role": role}, "content": {"content_type": "text", "parts": [text]}}
    return {"id": node_id, "parent": parent, "children": list(children), "message": message}


def test_sample_conversations_counts_and_quarantine(sample_data, tmp_path):
    frame, quarantine = read_conversations(
        sample_data / "sample_conversations", tmp_path / "no_interactions", 5_000_000
    )
    assert frame.schema == pl.Schema(CONVERSATIONS_SCHEMA)
    counts = dict(frame["source_format"].value_counts().iter_rows())
    assert counts == {"messages_jsonl": 22, "chatgpt_export": 3, "interaction": 12}
    found = {(Path(r["file"]).name, r["line"], r["reason"]) for r in quarantine.rows}
    assert found == {
        ("chats.jsonl", 6, "invalid_json"),
        ("chats.jsonl", 9, "wrong_shape"),
        ("chats.jsonl", 15, "unknown_role"),
        ("conversations.json", None, "broken_tree"),
        ("2026-11-20.jsonl", 4, "invalid_json"),
        ("2026-11-21.jsonl", 3, "wrong_shape"),
    }
    interactions = frame.filter(pl.col("source_format") == "interaction")
    assert dict(interactions["rating"].value_counts().iter_rows()) == {"up": 5, "down": 3, None: 4}
    assert interactions["corrected_reply"].is_not_null().sum() == 3


def test_chatgpt_branch_follows_current_node_and_tool_messages_are_folded(sample_data):
    rows = read_chatgpt_export(sample_data / "sample_conversations/chatgpt_export/conversations.json", Quarantine("t"))
    by_id = {row["conversation_id"]: row for row in rows}
    branch = by_id["cgpt-0002-branch"]["messages"]
    assert [m["role"] for m in branch] == ["user", "assistant", "user", "assistant"]
    assert "go back to senior" in branch[2]["content"]
    assert not any("What if I say no" in m["content"] for m in branch)
    tool = by_id["cgpt-0003-tool"]["messages"]
    assert [m["role"] for m in tool] == ["user", "assistant"]
    assert "precip_mm" not in tool[1]["content"] and tool[1]["content"].startswith("Let me check the forecast.\n\n")
    assert by_id["cgpt-0001-linear"]["created_at"].year == 2026


def test_broken_chatgpt_trees_are_quarantined(tmp_path):
    good = {
        "conversation_id": "ok",
        "current_node": "a",
        "mapping": {
            "r": _node("r", None, children=["u"]),
            "u": _node("u", "r", "user", "hi", ["a"]),
            "a": _node("a", "u", "assistant", "hello"),
        },
    }
    missing_parent = {
        "conversation_id": "orphan",
        "current_node": "a",
        "mapping": {"a": _node("a", "gone", "assistant", "x")},
    }
    cycle = {
        "conversation_id": "cycle",
        "current_node": "a",
        "mapping": {"a": _node("a", "b", "assistant", "x"), "b": _node("b", "a", "user", "y")},
    }
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([good, missing_parent, cycle]))
    quarantine = Quarantine("t")
    rows = read_chatgpt_export(path, quarantine)
    assert [r["conversation_id"] for r in rows] == ["ok"]
    details = {r["record_id"]: (r["reason"], r["detail"]) for r in quarantine.rows}
    assert details["orphan"][0] == "broken_tree" and "'gone' is not in the mapping" in details["orphan"][1]
    assert details["cycle"][0] == "broken_tree" and "cycle" in details["cycle"][1]
    with pytest.raises(ConversationError, match="current_node 'zz'"):
        chatgpt_active_path({"current_node": "zz", "mapping": {}})


def test_invalid_jsonl_lines_are_quarantined_with_their_line_numbers(tmp_path):
    good = {
        "messages": [{"role": "human", "content": "hi"}, {"role": "gpt", "content": "hello"}],
        "conversation_id": "c1",
    }
    lines = [
        json.dumps(good),
        "",
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"messages": [{"role": "user", "content": 3}]}),
        json.dumps({"conversation_id": "nomsg"}),
        json.dumps({**good, "conversation_id": "c2"}),
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n")
    quarantine = Quarantine("t")
    rows = read_messages_jsonl(path, 5_000_000, quarantine)
    assert [(r["conversation_id"], r["line"]) for r in rows] == [("c1", 1), ("c2", 7)]
    assert rows[0]["messages"] == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert [(r["line"], r["reason"]) for r in quarantine.rows] == [
        (3, "invalid_json"),
        (4, "wrong_shape"),
        (5, "wrong_shape"),
        (6, "wrong_shape"),
    ]
    assert all(r["file"] == str(path) for r in quarantine.rows)


def test_long_lines_are_quarantined_not_parsed(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "x" * 500}]}) + "\n")
    quarantine = Quarantine("t")
    assert read_messages_jsonl(path, 100, quarantine) == []
    assert quarantine.rows[0]["reason"] == "line_too_long" and quarantine.rows[0]["line"] == 1


def test_role_rules():
    assert normalize_messages(
        [
            {"role": "system", "content": " "},
            {"role": "Human", "content": "q"},
            {"role": "ai", "content": "a1"},
            {"role": "tool", "content": "{}"},
            {"role": "bot", "content": "a2"},
        ]
    ) == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1\n\na2"}]
    with pytest.raises(ConversationError, match="'robot'"):
        normalize_messages([{"role": "robot", "content": "x"}])


def test_interactions_are_read_from_the_server_folder_too(sample_data, tmp_path):
    server = tmp_path / "interactions"
    server.mkdir()
    record = {
        "interaction_id": "srv-1",
        "received_at": "2026-11-22T10:00:00Z",
        "rating": "up",
        "feedback": None,
        "corrected_reply": None,
        "model_version": "v3",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }
    (server / "2026-11-22.jsonl").write_text(json.dumps(record) + "\n")
    frame, _ = read_conversations(sample_data / "sample_conversations", server, 5_000_000)
    row = frame.filter(pl.col("conversation_id") == "srv-1").row(0, named=True)
    assert row["source_format"] == "interaction" and row["rating"] == "up" and row["line"] == 1
    assert frame.filter(pl.col("source_format") == "interaction").height == 13
