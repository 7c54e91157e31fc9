"""`forge dataset validate`: every problem of a chat JSONL reported with its line number."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.curate.validate import approx_tokens, validate_jsonl

GOOD = [
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "and 3+3?"},
            {"role": "assistant", "content": "6"},
        ]
    },
]


def write_lines(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_a_valid_file_passes_and_add_copies_it_into_imports(tmp_path):
    good = write_lines(tmp_path / "mine.jsonl", GOOD)
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path / "root"), "dataset", "validate", str(good), "--add"])
    assert result.exit_code == 0, result.output
    assert "valid: 2 examples" in result.output
    copied = tmp_path / "root" / "imports" / "mine.jsonl"
    assert copied.read_text() == good.read_text()


def test_every_problem_is_listed_with_its_line_and_the_exit_code_is_1(tmp_path):
    long_reply = "word " * 2000  # ~2,500 approximate tokens, over a max_length of 1024
    bad = write_lines(
        tmp_path / "bad.jsonl",
        [
            GOOD[0],  # 1 fine
            "{not json",  # 2
            {"prompt": "x"},  # 3
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "system", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            },  # 4 system later
            {"messages": [{"role": "assistant", "content": "first"}]},  # 5 starts with assistant
            {"messages": [{"role": "user", "content": "only a question"}]},  # 6 no assistant
            {"messages": [{"role": "user", "content": ""}, {"role": "robot", "content": "x"}]},  # 7 empty + bad role
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "user", "content": "q2"},
                    {"role": "assistant", "content": "a"},
                ]
            },  # 8 not alternating
            {
                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": long_reply}]
            },  # 9 too long
        ],
    )
    report = validate_jsonl(bad, max_tokens=1024)
    lines = {line for line, _ in report.problems}
    assert lines == {2, 3, 4, 5, 6, 7, 8, 9}
    assert not report.ok and report.examples == 9

    result = CliRunner().invoke(app, ["--data-root", str(tmp_path / "root"), "dataset", "validate", str(bad)])
    assert result.exit_code == 1
    out = result.output
    assert f"{bad}:2: not valid JSON" in out
    assert f"{bad}:3: field messages is missing" in out
    assert f"{bad}:4: messages[1].role is system, but a system message may only come first" in out
    assert f"{bad}:5: messages[0].role is assistant, expected user" in out
    assert f"{bad}:6: no assistant message" in out
    assert f"{bad}:7: messages[0].content is empty" in out and f"{bad}:7: messages[1].role is 'robot'" in out
    assert f"{bad}:8: messages[1].role is user, expected assistant" in out
    assert f"{bad}:9: about {approx_tokens(json.loads(bad.read_text().splitlines()[8])['messages'])} tokens" in out
    assert "INVALID" in out
    assert not (tmp_path / "root" / "imports").exists()


def test_approximate_token_count_follows_the_documented_rule():
    # ceil(9/4)=3 and ceil(5/4)=2, plus 4 per message and 3 for the reply primer.
    assert approx_tokens([{"role": "user", "content": "123456789"}, {"role": "assistant", "content": "12345"}]) == 16


def _validate_cli(path, tmp_path, *extra):
    return CliRunner().invoke(app, ["--data-root", str(tmp_path / "root"), "dataset", "validate", str(path), *extra])


def test_a_pretty_printed_json_array_gets_one_message_saying_so(tmp_path):
    array = tmp_path / "chats.jsonl"
    array.write_text(json.dumps(GOOD, indent=2))
    result = _validate_cli(array, tmp_path)
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith(str(array)) and "INVALID" not in line]
    expected = (
        f"{array}: this is one JSON array of 2 item(s), not JSONL: write one object per line "
        "(e.g. jq -c '.[]' FILE > FILE.jsonl)"
    )
    assert problems == [expected]


def test_deep_nesting_nan_and_control_characters_are_refused_by_line(tmp_path):
    deep = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"
    nan = '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": NaN}]}'
    nul = {"messages": [{"role": "user", "content": "q\u0000"}, {"role": "assistant", "content": "a\x1b[2J"}]}
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD[0], deep, nan, nul, GOOD[1]])
    report = validate_jsonl(bad)
    assert report.problems == [
        (2, "JSON nested too deeply to parse"),
        (3, "not valid JSON: NaN is not valid JSON (use a number or null)"),
        (4, "messages[0].content holds control character(s) \\x00; remove them"),
        (4, "messages[1].content holds control character(s) \\x1b; remove them"),
    ]
    assert report.examples == 5


def test_folders_and_devices_are_named_as_such(tmp_path):
    folder = _validate_cli(tmp_path, tmp_path)
    assert folder.exit_code == 1 and f"{tmp_path}: this is a folder; give a .jsonl file inside it" in folder.output
    device = _validate_cli("/dev/null", tmp_path)
    assert device.exit_code == 1 and "/dev/null: not a regular file (a device or pipe)" in device.output
    missing = _validate_cli(tmp_path / "nope.jsonl", tmp_path)
    assert missing.exit_code == 1 and f"{tmp_path / 'nope.jsonl'}: no such file" in missing.output


def test_an_example_the_language_filter_will_drop_is_a_warning_not_an_error(tmp_path):
    german = {
        "messages": [
            {"role": "user", "content": "Wie war dein Tag heute im Büro?"},
            {
                "role": "assistant",
                "content": "Der Tag war lang, aber wir haben das Projekt endlich "
                "abgeschlossen und alle waren sehr zufrieden damit.",
            },
        ]
    }
    mixed = write_lines(tmp_path / "mixed.jsonl", [GOOD[1], german])
    result = _validate_cli(mixed, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"{mixed}:2: warning: detected language 'de' is not in prepare.filter.languages ['en']" in result.output
    assert f"{mixed}:1: warning" not in result.output


def test_an_added_file_is_ingested_with_source_import(tmp_path):
    from forge_pipeline.ingest.conversations import read_conversations
    from forge_pipeline.ingest.examples import build_training_examples
    from forge_pipeline.ingest.vault import notes_frame
    from forge_pipeline.settings import load_settings

    good = write_lines(tmp_path / "mine.jsonl", GOOD)
    assert _validate_cli(good, tmp_path, "--add").exit_code == 0
    settings = load_settings(data_root=tmp_path / "root")
    empty = tmp_path / "empty"
    empty.mkdir()
    conversations, _ = read_conversations(empty, None, 5_000_000, settings.paths.imports)
    examples, _ = build_training_examples(notes_frame([]), conversations, settings)
    assert examples.height == 2 and set(examples["source"]) == {"import"}
