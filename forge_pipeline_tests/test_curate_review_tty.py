"""`forge curate` driven through a pseudo-terminal, key by key, as a person would use it."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import polars as pl
import pytest
from typer.testing import CliRunner

from forge_pipeline.cli import app
from forge_pipeline.curate.decisions import DecisionStore
from forge_pipeline.records import examples_frame
from forge_pipeline.settings import load_settings
from forge_pipeline_tests.test_curate_decisions import example_rows

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
FORGE = [sys.executable, "-c", "from forge_pipeline.cli import main; main()"]


class Terminal:
    """A child process on a pseudo-terminal: wait for text on its screen, then type keys."""

    def __init__(self, args: list[str], env: dict):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, start_new_session=True
        )
        os.close(slave)
        self.screen = ""  # everything shown so far, escape codes removed
        self.seen = 0  # expect() looks only after what earlier expects consumed

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.screen += ANSI.sub("", data.decode("utf-8", errors="replace")).replace("\r", "")
        return bool(data)

    def expect(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            found = self.screen.find(text, self.seen)
            if found >= 0:
                self.seen = found + len(text)
                return
            if time.monotonic() > deadline or (
                not self._read(0.2) and self.process.poll() is not None and not self._read(0.2)
            ):
                raise AssertionError(f"{text!r} never appeared; screen tail:\n{self.screen[-3000:]}")

    def press(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.2)
        while self._read(0.1):
            pass
        os.close(self.master)
        if self.process.poll() is None:
            self.process.kill()
            raise AssertionError(f"forge curate did not exit; screen tail:\n{self.screen[-3000:]}")
        return self.process.returncode


@pytest.fixture
def review_root(tmp_path):
    settings = load_settings(data_root=tmp_path / "root")
    settings.paths.ensure()
    rows = example_rows()
    pii = pl.Series("pii_replacements", [[], [{"entity_type": "PERSON", "placeholder": "<PERSON>"}], [], []])
    examples_frame(rows).with_columns(pii).write_parquet(settings.paths.tables / "deduplicated_examples.parquet")
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import json, sys\n"
        "path = sys.argv[1]\n"
        "messages = json.load(open(path))\n"
        "messages[-1]['content'] = 'An edited, better reply.'\n"
        "json.dump(messages, open(path, 'w'))\n"
    )
    env = {
        **os.environ,
        "TERM": "xterm",
        "COLUMNS": "120",
        "HF_HUB_OFFLINE": "1",
        "EDITOR": f"{sys.executable} {editor}",
    }
    env.pop("VISUAL", None)
    env.pop("FORGE_CONFIG", None)
    return settings, rows, env


def test_a_person_approves_rejects_undoes_skips_edits_and_resumes_later(review_root):
    settings, rows, env = review_root
    ids = [r["example_id"] for r in rows]
    command = [*FORGE, "--data-root", str(settings.data_root), "curate", "--reviewer", "tester"]

    term = Terminal(command, env)
    term.expect("(1/4)")
    term.expect("[a]pprove")
    term.press("a")
    term.expect("(2/4)")
    term.expect("PII replaced  PERSON → <PERSON>")
    term.press("r")
    term.expect("reason for rejecting")
    term.press("names a real person\r")
    term.expect("(3/4)")
    term.press("u")  # the rejection was a mistake
    term.expect("undid the last decision for " + ids[1])
    term.expect("(2/4)")
    term.press("s")
    term.expect("(3/4)")
    term.press("e")
    term.expect("(4/4)")
    term.press("q")
    assert term.finish() == 0

    with DecisionStore(settings.paths.curation_db) as store:
        decisions = store.all()
        assert decisions[ids[0]].status == "approved" and decisions[ids[0]].reviewer == "tester"
        assert decisions[ids[1]].status == "skipped"
        edited = decisions[ids[2]]
        assert edited.status == "edited"
        assert edited.messages[-1]["content"] == "An edited, better reply."
        assert edited.original_messages == rows[2]["messages"]
        assert ids[3] not in decisions

    # A second session starts where the first stopped: only the unreviewed example is shown.
    term = Terminal(command, env)
    term.expect(ids[3] + "  (1/1)")
    term.press("r")
    term.expect("reason for rejecting")
    term.press("off topic\r")
    term.expect("reviewed all 1 selected examples")
    assert term.finish() == 0
    with DecisionStore(settings.paths.curation_db) as store:
        assert store.get(ids[3]).status == "rejected" and store.get(ids[3]).reason == "off topic"
        assert store.counts() == {"approved": 1, "rejected": 1, "edited": 1, "skipped": 1}


def test_an_edit_that_breaks_the_format_is_not_saved_and_the_example_stays(review_root, tmp_path):
    settings, rows, env = review_root
    bad_editor = tmp_path / "bad_editor.py"
    bad_editor.write_text(
        "import json, sys\njson.dump([{'role': 'assistant', 'content': ''}], open(sys.argv[1], 'w'))\n"
    )
    env = {**env, "EDITOR": f"{sys.executable} {bad_editor}"}
    term = Terminal([*FORGE, "--data-root", str(settings.data_root), "curate"], env)
    term.expect("(1/4)")
    term.press("e")
    term.expect("edit not saved")
    term.expect("messages[0].content is empty")
    term.expect("any other key to discard the edit")
    term.press("d")
    term.expect("(1/4)")  # still on the same example
    term.press("q")
    assert term.finish() == 0
    with DecisionStore(settings.paths.curation_db) as store:
        assert store.all() == {}


def test_non_interactive_approve_all_filters_export_and_import(review_root, tmp_path):
    settings, rows, _ = review_root
    root = ["--data-root", str(settings.data_root)]
    runner = CliRunner()
    ids = [r["example_id"] for r in rows]
    with DecisionStore(settings.paths.curation_db) as store:
        store.decide(ids[3], "rejected", reason="private")

    result = runner.invoke(app, [*root, "curate", "--approve-all", "--source", "vault"])
    assert result.exit_code == 0, result.output
    assert "approved 1 of 1" in result.output  # the rejected vault example is not selected (status unreviewed)
    result = runner.invoke(app, [*root, "curate", "--approve-all", "--search", "HI"])
    assert "approved 1 of 1" in result.output  # only "Say hi" matches, case-insensitively
    with DecisionStore(settings.paths.curation_db) as store:
        assert {k: d.status for k, d in store.all().items()} == {
            ids[0]: "approved",
            ids[2]: "approved",
            ids[3]: "rejected",
        }

    exported = tmp_path / "decisions.jsonl"
    assert runner.invoke(app, [*root, "curate", "--export", str(exported)]).exit_code == 0
    assert len(exported.read_text().splitlines()) == 3
    other_root = ["--data-root", str(tmp_path / "other")]
    result = runner.invoke(app, [*other_root, "curate", "--import", str(exported)])
    assert result.exit_code == 0 and "imported 3 decisions" in result.output
    with DecisionStore(load_settings(data_root=tmp_path / "other").paths.curation_db) as store:
        assert store.get(ids[3]).reason == "private"

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"example_id": "x", "status": "approved"}\n{"example_id": "y", "status": "great"}\n')
    result = runner.invoke(app, [*other_root, "curate", "--import", str(bad)])
    assert result.exit_code == 1 and "bad.jsonl:2: field status is 'great'" in result.output


def test_curate_without_examples_says_to_run_the_demo(tmp_path):
    result = CliRunner().invoke(app, ["--data-root", str(tmp_path), "curate"])
    assert result.exit_code == 1 and "forge demo" in result.output


def test_a_json_typo_in_an_edit_reopens_the_editor_with_the_text_as_typed(review_root, tmp_path):
    settings, rows, env = review_root
    typo_editor = tmp_path / "typo_editor.py"
    # First opening: the person changes the reply but leaves a trailing comma. Second: they see their own
    # text again (not the original) and fix the comma.
    typo_editor.write_text(
        "import sys\n"
        "path = sys.argv[1]\n"
        "text = open(path).read()\n"
        "if 'Fixed by hand' in text:\n"
        "    text = text.replace('\"Fixed by hand\",', '\"Fixed by hand\"')\n"
        "else:\n"
        "    text = text.replace('\"A folder of Markdown notes.\"', '\"Fixed by hand\",')\n"
        "open(path, 'w').write(text)\n"
    )
    env = {**env, "EDITOR": f"{sys.executable} {typo_editor}"}
    term = Terminal([*FORGE, "--data-root", str(settings.data_root), "curate"], env)
    term.expect("(1/4)")
    term.press("e")
    term.expect("not valid JSON")
    term.expect("press e to fix it in the editor (your text is kept)")
    term.press("e")
    term.expect("(2/4)")
    term.press("q")
    assert term.finish() == 0
    with DecisionStore(settings.paths.curation_db) as store:
        edited = store.get(rows[0]["example_id"])
        assert edited.status == "edited" and edited.messages[-1]["content"] == "Fixed by hand"


def test_ctrl_c_at_the_reject_reason_prompt_quits_at_once(review_root):
    settings, rows, env = review_root
    term = Terminal([*FORGE, "--data-root", str(settings.data_root), "curate"], env)
    term.expect("(1/4)")
    term.press("a")
    term.expect("(2/4)")
    term.press("r")
    term.expect("reason for rejecting")
    term.press("half a reas\x03")  # no Enter
    assert term.finish(timeout=60) == 0  # without the fix it never exits (Ctrl-C waits for Enter)
    with DecisionStore(settings.paths.curation_db) as store:
        assert {k: d.status for k, d in store.all().items()} == {rows[0]["example_id"]: "approved"}


def test_at_80x24_the_header_and_user_turn_stay_on_screen_and_v_shows_everything(tmp_path, capsys):
    import io

    from rich.console import Console

    from forge_pipeline.curate.review import run_review

    reply = "\n".join(f"line {i} of a long reply" for i in range(200))
    example = {
        **example_rows()[0],
        "messages": [{"role": "user", "content": "What is a vault?"}, {"role": "assistant", "content": reply}],
    }
    screen = io.StringIO()
    console = Console(file=screen, width=80, height=24, force_terminal=True, color_system=None)
    keys = iter(["v", "q"])
    with DecisionStore(tmp_path / "curation.sqlite") as store:
        run_review([example], store, reviewer=None, console=console, key_reader=lambda: next(keys))
    first_screen = screen.getvalue().split("\x1b")[0] if "\x1b" in screen.getvalue() else screen.getvalue()
    shown = first_screen.split("[q]uit")[0].splitlines()
    assert len(shown) <= 24, "\n".join(shown)
    assert any("(1/1)" in line for line in shown) and any("What is a vault?" in line for line in shown)
    assert any("more lines: press v to view all" in line for line in shown)
    paged = capsys.readouterr().out + screen.getvalue()
    assert "line 199 of a long reply" in paged  # v shows the whole reply


def test_an_example_holding_escape_sequences_is_shown_inert():
    import io

    from rich.console import Console

    from forge_pipeline.curate.review import render

    example = {
        **example_rows()[0],
        "source_path": "notes/[bold]x[/bold]\x1b[31m.md",
        "tags": ["\x1b]0;t\x07"],
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok\x1b]0;TITLE\x07\x1b[2J"}],
    }
    screen = io.StringIO()
    Console(file=screen, width=120, color_system=None).print(render(example, None, 1, 1))
    text = screen.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "ok\\x1b]0;TITLE\\x07\\x1b[2J" in text and "notes/[bold]x[/bold]\\x1b[31m.md" in text
