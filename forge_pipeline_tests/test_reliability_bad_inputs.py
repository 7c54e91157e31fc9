"""Bad inputs (issue 8): each is quarantined with a reason naming the file/line/field, and the run goes on.

Already covered elsewhere and not repeated here (see README, "Reliability"):
broken/unclosed frontmatter, latin-1 note, empty note, oversized note, ignored folders, a folder symlink
loop and too-deep folders (test_ingest_vault.py); invalid JSON lines, wrong shapes, missing parent and
cyclic ChatGPT trees, over-long lines, unknown roles (test_ingest_conversations.py); no user / no assistant
turn and rated-down interactions (test_ingest_examples.py); wrong settings values in a file
(test_settings_and_atomic.py).

What this file adds are inputs that used to crash the whole read (each was a bug) plus a 50 MB note, binary
files named .md, alias bombs and a Dagster run over a vault and conversation folder full of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from forge_pipeline.ingest.config import IngestSettings
from forge_pipeline.ingest.conversations import read_chatgpt_export, read_messages_jsonl
from forge_pipeline.ingest.obsidian import FrontmatterError, split_frontmatter
from forge_pipeline.ingest.vault import read_vault
from forge_pipeline.records import Quarantine
from forge_pipeline.settings import SettingsError, load_settings

GOOD_NOTE = "---\ntags: [reflection]\ncreated: 2026-03-02\n---\n# Fine\nA perfectly ordinary note about planning.\n"
GOOD_CHAT = {
    "conversation_id": "good",
    "messages": [
        {"role": "user", "content": "How do I plan a week?"},
        {"role": "assistant", "content": "Start with the fixed points."},
    ],
}


def _write(root: Path, rel: str | bytes, data: str | bytes) -> Path:
    path = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(rel))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _reasons(quarantine: Quarantine) -> dict[str, tuple[str, str]]:
    return {row["file"]: (row["reason"], row["detail"]) for row in quarantine.rows}


# -- the vault ------------------------------------------------------------------------------------------


def test_a_50_mb_note_is_quarantined_by_size_without_being_read(tmp_path):
    vault = tmp_path / "vault"
    _write(vault, "good.md", GOOD_NOTE)
    big = vault / "huge.md"
    with open(big, "wb") as handle:  # sparse: 50 MB on paper, no time spent writing it
        handle.truncate(50 * 1024 * 1024)
    notes, quarantine = read_vault(vault, IngestSettings())
    assert notes["path"].to_list() == ["good.md"]
    reason, detail = _reasons(quarantine)["huge.md"]
    assert reason == "too_large" and f"{50 * 1024 * 1024} bytes > ingest.max_note_bytes=2000000" in detail


@pytest.mark.parametrize(
    "name, data, reason, detail",
    [
        # PNG bytes named .md: a binary file, not a note.
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary", "NUL byte at offset 8"),
        # Bug: low binary bytes decode as "UTF-8", and such a file became a note full of control characters.
        ("blob.md", b"\x00\x01\x02\x03 sqlite-ish \x00\x00", "binary", "NUL byte at offset 0"),
        ("cp1252.md", "Smart \u201cquotes\u201d".encode("cp1252"), "not_utf8", "not UTF-8 at byte 6"),
        ("utf16.md", "# Note\nhello".encode("utf-16"), "binary", "NUL byte"),
    ],
)
def test_binary_and_non_utf8_notes_are_quarantined(tmp_path, name, data, reason, detail):
    vault = tmp_path / "vault"
    _write(vault, "good.md", GOOD_NOTE)
    _write(vault, name, data)
    notes, quarantine = read_vault(vault, IngestSettings())
    assert notes["path"].to_list() == ["good.md"]
    got_reason, got_detail = _reasons(quarantine)[name]
    assert got_reason == reason and detail in got_detail


@pytest.mark.parametrize(
    "frontmatter, message",
    [
        # Bug: PyYAML resolves this as a timestamp, then datetime() raises ValueError: the whole read crashed.
        ("created: 2026-13-45", "month must be in 1..12"),
        ("a: !!python/object/apply:os.system ['true']", "could not determine a constructor"),
        ("title: 'unterminated", "frontmatter line"),
        ("- just\n- a list", "frontmatter is a list"),
        # A "billion laughs" alias bomb: expanded for JSON it would need ~10^9 values.
        (
            "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
            + "\n".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)),
            "expands to more than 100000 values",
        ),
        ("a: &a [1, *a]", "nests deeper than 100 levels"),
    ],
)
def test_malformed_frontmatter_names_the_problem(frontmatter, message):
    with pytest.raises(FrontmatterError, match=message):
        split_frontmatter(f"---\n{frontmatter}\n---\nbody\n")


def test_frontmatter_with_non_string_keys_is_kept_not_crashed(tmp_path):
    # Bug: `1: x` beside `b: y` made json.dumps(sort_keys=True) raise TypeError and stopped the whole vault read.
    vault = tmp_path / "vault"
    _write(vault, "keys.md", "---\n1: one\nb: bee\n2026-01-01: new year\nnested: {3: three}\n---\nbody text\n")
    notes, quarantine = read_vault(vault, IngestSettings())
    assert not quarantine.rows
    assert json.loads(notes["frontmatter"][0]) == {
        "1": "one",
        "2026-01-01": "new year",
        "b": "bee",
        "nested": {"3": "three"},
    }


def test_bad_file_names_and_broken_links_are_quarantined(tmp_path):
    vault = tmp_path / "vault"
    _write(vault, "good.md", GOOD_NOTE)
    # Bug: a non-UTF-8 file name reached Parquet as a surrogate-escaped string and the write failed.
    _write(vault, b"caf\xe9.md", "# Caf\u00e9\ntext")
    _write(vault, b"f\xf6lder/a/b/n.md", "# In a folder whose name is not UTF-8")
    os.symlink(vault / "gone.md", vault / "dangling.md")  # used to vanish without a trace
    os.symlink("self.md", vault / "self.md")
    os.symlink("loop", vault / "loop")  # bug: DirEntry.is_dir() raised ELOOP and crashed the walk
    notes, quarantine = read_vault(vault, IngestSettings(max_folder_depth=2))
    assert notes["path"].to_list() == ["good.md"]
    reasons = _reasons(quarantine)
    assert reasons["caf\ufffd.md"][0] == "bad_filename" and "rename" in reasons["caf\ufffd.md"][1]
    assert reasons["f\ufffdlder/a/b"][0] == "too_deep"  # folder rows carry storable names too
    assert reasons["dangling.md"][0] == "broken_symlink" and "gone.md" in reasons["dangling.md"][1]
    assert reasons["self.md"][0] == "broken_symlink"
    quarantine.frame().write_parquet(tmp_path / "q.parquet")  # storable as the asset stores it


def test_an_unreadable_note_is_quarantined_and_read_once_it_is_readable_again(tmp_path, monkeypatch):
    # Tests run as root, where chmod 000 does not stop a read: inject the PermissionError at the read call.
    vault, cache = tmp_path / "vault", tmp_path / "cache"
    _write(vault, "good.md", GOOD_NOTE)
    _write(vault, "locked.md", "# Locked\nreadable again later")
    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.md":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    notes, quarantine = read_vault(vault, IngestSettings(), cache)  # bug: PermissionError stopped the read
    assert notes["path"].to_list() == ["good.md"]
    assert _reasons(quarantine)["locked.md"] == ("unreadable", "cannot read the file: Permission denied")
    monkeypatch.undo()
    # Fixing a permission changes neither size nor mtime: the parse cache must not keep the note quarantined.
    notes, quarantine = read_vault(vault, IngestSettings(), cache)
    assert notes["path"].to_list() == ["good.md", "locked.md"] and not quarantine.rows


def test_very_deep_folders_and_mutual_symlink_loops_terminate(tmp_path):
    vault = tmp_path / "vault"
    _write(vault, "good.md", GOOD_NOTE)
    deep = "/".join(f"d{i}" for i in range(40))
    _write(vault, f"{deep}/lost.md", "# Deep\ntext")
    (vault / "a").mkdir()
    (vault / "b").mkdir()
    os.symlink(vault / "b", vault / "a" / "to_b")
    os.symlink(vault / "a", vault / "b" / "to_a")
    notes, quarantine = read_vault(vault, IngestSettings())  # default max_folder_depth=32
    assert notes["path"].to_list() == ["good.md"]
    reasons = {row["reason"] for row in quarantine.rows}
    assert reasons == {"too_deep", "symlink_loop"}
    too_deep = next(r for r in quarantine.rows if r["reason"] == "too_deep")
    assert "ingest.max_folder_depth=32" in too_deep["detail"] and too_deep["file"].count("/") == 32


# -- conversations ---------------------------------------------------------------------------------------


def test_jsonl_lines_that_used_to_crash_are_quarantined_by_line(tmp_path):
    user_only = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    lines = [
        "\ufeff" + json.dumps(GOOD_CHAT),  # 1: a BOM before the first record is not an error
        "[" * 50_000 + "]" * 50_000,  # 2: bug: RecursionError stopped the read
        json.dumps({**user_only, "created_at": 1e20}),  # 3: bug: OverflowError
        '{"messages": [], "created_at": NaN}',  # 4: bug: ValueError (Python's json accepts NaN)
        json.dumps({**user_only, "created_at": True}),  # 5: a bool is not a time
        json.dumps({**user_only, "created_at": "2026-99-99"}),
        json.dumps({**GOOD_CHAT, "conversation_id": "good2"}),
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    quarantine = Quarantine("conversations")
    rows = read_messages_jsonl(path, 5_000_000, quarantine)
    assert [(r["conversation_id"], r["line"]) for r in rows] == [("good", 1), ("good2", 7)]
    got = [(r["line"], r["reason"], r["detail"]) for r in quarantine.rows]
    assert [(line, reason) for line, reason, _ in got] == [
        (2, "invalid_json"),
        (3, "bad_timestamp"),
        (4, "bad_timestamp"),
        (5, "bad_timestamp"),
        (6, "bad_timestamp"),
    ]
    assert "nested too deeply" in got[0][2] and "created_at" in got[1][2] and "created_at" in got[3][2]
    assert all(r["file"] == str(path) for r in quarantine.rows)


def _node(node_id, parent, role="user", text="hi"):
    return {
        "id": node_id,
        "parent": parent,
        "message": {"author": {"role": role}, "content": {"content_type": "text", "parts": [text]}},
    }


GOOD_TREE = {
    "conversation_id": "ok",
    "current_node": "a",
    "mapping": {"u": _node("u", None, "user", "q"), "a": _node("a", "u", "assistant", "answer")},
}


@pytest.mark.parametrize(
    "conversation, reason, detail",
    [
        # Each of these raised AttributeError/TypeError out of read_chatgpt_export and lost the whole export.
        ({"current_node": "a", "mapping": {"a": None}}, "broken_tree", "mapping['a'] is a NoneType"),
        ({"current_node": ["a"], "mapping": {"a": _node("a", None)}}, "broken_tree", "current_node ['a'] is not in"),
        ({"current_node": "a", "mapping": {"a": {"parent": ["u"]}}}, "broken_tree", "parent ['u'] is not in"),
        (
            {"current_node": "a", "mapping": {"a": {"parent": None, "message": "hello"}}},
            "wrong_shape",
            "mapping['a'].message is a str",
        ),
        (
            {"current_node": "a", "mapping": {"a": {"parent": None, "message": {"author": "user", "content": {}}}}},
            "wrong_shape",
            "message.author is a str",
        ),
        (
            {
                "current_node": "a",
                "mapping": {"a": {"parent": None, "message": {"author": {"role": "user"}, "content": "x"}}},
            },
            "wrong_shape",
            "message.content is a str",
        ),
        # Bug: a string `parts` was joined character by character ("h\ni") into the training text.
        (
            {
                "current_node": "a",
                "mapping": {"a": {"parent": None, "message": {"author": {"role": "user"}, "content": {"parts": "hi"}}}},
            },
            "wrong_shape",
            "content.parts is a str",
        ),
        ({**GOOD_TREE, "create_time": 1e30}, "bad_timestamp", "create_time 1e+30"),
        ({"current_node": "a"}, "broken_tree", "'mapping' is missing"),
    ],
)
def test_broken_chatgpt_mapping_trees_are_quarantined_and_the_rest_read(tmp_path, conversation, reason, detail):
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([GOOD_TREE, {**conversation, "conversation_id": "bad"}]))
    quarantine = Quarantine("conversations")
    rows = read_chatgpt_export(path, quarantine)
    assert [r["conversation_id"] for r in rows] == ["ok"]
    [row] = quarantine.rows
    assert row["reason"] == reason and detail in row["detail"], row
    assert row["file"] == str(path) and row["record_id"] == "bad" and "conversation 1" in row["detail"]


def test_unreadable_chatgpt_export_is_one_quarantine_row(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text("[" * 100_000)
    quarantine = Quarantine("conversations")
    assert read_chatgpt_export(path, quarantine) == []
    assert quarantine.rows[0]["reason"] == "invalid_json" and "nested too deeply" in quarantine.rows[0]["detail"]


# -- settings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, text, expected",
    [
        (".yaml", "train:\n  learning_rate: [1\n", "line 2"),  # YAML syntax error: file and line named
        (".toml", "train = [\n", "TOMLDecodeError"),  # used to be a bare TOMLDecodeError without the file name
        (".yaml", "- a\n- b\n", "mapping of fields"),  # used to be "dictionary update sequence element #0"
    ],
)
def test_unreadable_settings_file_names_the_file(tmp_path, monkeypatch, suffix, text, expected):
    config = tmp_path / f"forge{suffix}"
    config.write_text(text)
    monkeypatch.setenv("FORGE_CONFIG", str(config))
    with pytest.raises(SettingsError) as err:
        load_settings(data_root=tmp_path)
    assert str(config) in str(err.value) and expected in str(err.value)


def test_wrong_environment_value_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGE_TRAIN__LEARNING_RATE", "fast")
    monkeypatch.setenv("FORGE_SERVE__PORT", "70000")
    with pytest.raises(SettingsError) as err:
        load_settings(data_root=tmp_path)
    message = str(err.value)
    assert "train.learning_rate" in message and "'fast'" in message and "[from FORGE_TRAIN__LEARNING_RATE]" in message
    assert "serve.port" in message and "[from FORGE_SERVE__PORT]" in message
    monkeypatch.delenv("FORGE_TRAIN__LEARNING_RATE")
    monkeypatch.delenv("FORGE_SERVE__PORT")
    monkeypatch.setenv("FORGE_INGEST", "{not json")  # a whole section as a variable
    with pytest.raises(SettingsError, match=r'field "ingest" from source "EnvSettingsSource".*FORGE_\*'):
        load_settings(data_root=tmp_path)


def test_forge_yaml_in_the_working_directory_is_named_as_the_source(tmp_path, monkeypatch):
    (tmp_path / "forge.yaml").write_text("catalog:\n  validation_ratio: 3\n")
    monkeypatch.delenv("FORGE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=r"from forge.yaml: catalog.validation_ratio"):
        load_settings(data_root=tmp_path)


# -- the whole ingest stage in Dagster ---------------------------------------------------------------------


def test_dagster_ingest_over_hostile_inputs_succeeds_and_quarantines_each(tmp_path, monkeypatch):
    from forge_pipeline.definitions import group_definitions
    from forge_pipeline.defs.prepare.training_examples import training_examples
    from forge_pipeline.defs.resources import shared_resources

    vault, chats = tmp_path / "vault", tmp_path / "conversations"
    _write(vault, "Reflections/good.md", GOOD_NOTE)
    _write(vault, "bad date.md", "---\ncreated: 2026-13-45\n---\ntext\n")
    _write(vault, "int keys.md", "---\n1: a\nb: c\ntags: [reflection]\n---\nA note with odd keys but fine text.\n")
    _write(vault, "blob.md", b"\x00\x01binary")
    with open(vault / "huge.md", "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    os.symlink(vault, vault / "Reflections" / "loop")
    _write(
        chats,
        "chats.jsonl",
        "\n".join(
            [
                json.dumps(GOOD_CHAT),
                "[" * 50_000,
                "{not json",
                json.dumps({"messages": [{"role": "user", "content": "nobody answers"}]}),
            ]
        ),
    )
    _write(
        chats,
        "export/conversations.json",
        json.dumps([GOOD_TREE, {"conversation_id": "broken", "current_node": "a", "mapping": {"a": None}}]),
    )
    monkeypatch.setenv("FORGE_VAULT_DIR", str(vault))
    monkeypatch.setenv("FORGE_CONVERSATIONS_DIR", str(chats))
    root = tmp_path / "data_root"
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*group_definitions("ingest").assets, training_examples],
            resources=shared_resources(str(root)),
            instance=instance,
        )
        assert result.success

        def meta(asset):
            event = result.asset_materializations_for_node(asset)[0]
            return {k: v.value for k, v in event.metadata.items()}

        assert meta("vault_notes")["notes"] == 2
        assert meta("vault_notes")["dropped_by_reason"] == {
            "invalid_frontmatter": 1,
            "binary": 1,
            "too_large": 1,
            "symlink_loop": 1,
        }
        assert meta("conversations")["conversations"] == 3  # good chat, user-only chat, good ChatGPT tree
        assert meta("conversations")["dropped_by_reason"] == {"invalid_json": 2, "broken_tree": 1}
        assert meta("training_examples")["dropped_by_reason"] == {"no_assistant_turn": 1}
        preview = meta("conversations")["dropped_preview"]  # reason, detail, line and file, for the UI
        rows = {(r.data["line"], r.data["reason"]): r.data["detail"] for r in preview.records}
        assert rows[(2, "invalid_json")].startswith("JSON nested too deeply to parse")
        assert rows[(3, "invalid_json")].startswith("Expecting property name")
    stored = pl.read_parquet(root / "quarantine" / "vault_notes.parquet")
    assert set(stored["file"]) == {"bad date.md", "blob.md", "huge.md", "Reflections/loop"}
    examples = pl.read_parquet(root / "tables" / "training_examples.parquet")
    assert examples.height == 4  # two reflection notes + two conversations
