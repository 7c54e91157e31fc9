"""`forge dataset validate`: every problem of a chat JSONL reported with its line number."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.curate.validate import approx_tokens, validate_jsonl

GOOD = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."}]},
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}]},
]


def write_lines(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_a_valid_file_passes_and_add_copies_it_into_imports(tmp_path):
    good = write_lines(tmp_path / "mine.jsonl", GOOD)
    result = CliRunner().invoke(app, ["dataset", "validate", str(good), "--add", "--data-root", str(tmp_path / "root")])
    assert result.exit_code == 0, result.output
    assert "valid: 2 examples" in result.output
    copied = tmp_path / "root" / "imports" / "mine.jsonl"
    assert copied.read_text() == good.read_text()


def test_every_problem_is_listed_with_its_line_and_the_exit_code_is_1(tmp_path):
    long_reply = "word " * 2000  # ~2,500 approximate tokens, over a max_length of 1024
    bad = write_lines(tmp_path / "bad.jsonl", [
        GOOD[0],                                                                              # 1 fine
        "{not json",                                                                          # 2
        {"prompt": "x"},                                                                      # 3
        {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},
                      {"role": "assistant", "content": "c"}]},                                # 4 system later
        {"messages": [{"role": "assistant", "content": "first"}]},                            # 5 starts with assistant
        {"messages": [{"role": "user", "content": "only a question"}]},                       # 6 no assistant
        {"messages": [{"role": "user", "content": ""}, {"role": "robot", "content": "x"}]},   # 7 empty + bad role
        {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q2"},
                      {"role": "assistant", "content": "a"}]},                                # 8 not alternating
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": long_reply}]},  # 9 too long
    ])
    report = validate_jsonl(bad, max_tokens=1024)
    lines = {line for line, _ in report.problems}
    assert lines == {2, 3, 4, 5, 6, 7, 8, 9}
    assert not report.ok and report.examples == 9

    result = CliRunner().invoke(app, ["dataset", "validate", str(bad), "--data-root", str(tmp_path / "root")])
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
