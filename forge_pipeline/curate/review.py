"""The interactive terminal review behind `forge curate`: one example at a time, one key per decision.

Keys are read from a raw terminal (termios/tty) so a person presses a key without Enter; when stdin is not
a terminal (a pipe), keys are read one character at a time from it, which keeps scripted use possible.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from forge_pipeline.curate.decisions import Decision, DecisionStore
from forge_pipeline.curate.validate import message_problems
from forge_pipeline.records import escape_control
from forge_pipeline.settings import ForgeSettings

FILTER_STATUSES = ("unreviewed", "approved", "rejected", "edited", "skipped", "all")
KEY_HELP = "[a]pprove  [r]eject  [e]dit  [s]kip  [u]ndo  [q]uit"


class ReviewError(RuntimeError):
    pass


def load_examples(settings: ForgeSettings) -> pl.DataFrame:
    path = settings.paths.tables / "deduplicated_examples.parquet"
    if not path.exists():
        raise ReviewError(f"{path} does not exist: run `forge demo` first (it builds the examples to review)")
    return pl.read_parquet(path)


def select_examples(frame: pl.DataFrame, decisions: dict[str, Decision], *, source: str | None = None,
                    tag: str | None = None, status: str = "unreviewed", search: str | None = None) -> list[dict]:
    """The examples to review, in table order; `status` filters on the current decision."""
    if status not in FILTER_STATUSES:
        raise ReviewError(f"--status {status!r}: expected one of {', '.join(FILTER_STATUSES)}")
    if source:
        frame = frame.filter(pl.col("source") == source)
    if tag:
        frame = frame.filter(pl.col("tags").list.contains(tag))
    if search:
        needle = search.lower()
        frame = frame.filter(pl.col("messages").list.eval(
            pl.element().struct.field("content").str.to_lowercase().str.contains(needle, literal=True)).list.any())
    rows = []
    for row in frame.iter_rows(named=True):
        decision = decisions.get(row["example_id"])
        current = decision.status if decision else "unreviewed"
        if status == "all" or current == status:
            rows.append(row)
    return rows


def render(example: dict, decision: Decision | None, position: int, total: int):
    """A rich renderable for one example (edited content shown when there is an edit)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    def row(label: str, value: str) -> None:
        # Text: a path or tag with [brackets] is shown, not parsed as markup; escape_control: an ESC sequence
        # in the data is shown as \x1b, not obeyed by the reviewer's terminal.
        head.add_row(label, Text(escape_control(value)))

    row("example", f"{example['example_id']}  ({position}/{total})")
    row("source", str(example.get("source")))
    row("path", str(example.get("source_path") or "-"))
    row("conversation", str(example.get("conversation_id") or "-"))
    row("tags", ", ".join(example.get("tags") or []) or "-")
    row("status", decision.status + (f" ({decision.reason})" if decision.reason else "") if decision else "unreviewed")
    replacements = example.get("pii_replacements") or []
    if replacements:
        counts: dict[str, int] = {}
        for item in replacements:
            label = f"{item.get('entity_type')} → {item.get('placeholder')}"
            counts[label] = counts.get(label, 0) + 1
        row("PII replaced", "; ".join(f"{k} ×{n}" if n > 1 else k for k, n in counts.items()))
    messages = decision.messages if decision and decision.status == "edited" and decision.messages else example["messages"]
    styles = {"system": "magenta", "user": "cyan", "assistant": "green"}
    panels = [Panel(Text(escape_control(m["content"])), title=escape_control(m["role"]), title_align="left", border_style=styles.get(m["role"], "white"))
              for m in messages]
    return Group(head, *panels, Text(KEY_HELP, style="bold"))


def read_key() -> str:
    """One key press, without Enter on a terminal."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        char = sys.stdin.read(1)
        return char or "q"  # end of input quits
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        # TCSANOW, not setraw's default TCSAFLUSH: a key typed while the example was still being drawn
        # must count, not be thrown away.
        tty.setraw(fd, termios.TCSANOW)
        char = os.read(fd, 1).decode("utf-8", errors="replace")
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    return "q" if char in ("\x03", "\x04") else char  # Ctrl-C / Ctrl-D quit cleanly


def read_line(prompt: str) -> str:
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def edit_in_editor(messages: list[dict]) -> tuple[list[dict] | None, list[str]]:
    """Open $VISUAL/$EDITOR on the messages as JSON; returns (messages, problems) after parsing back."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        json.dump([{"role": m["role"], "content": m["content"]} for m in messages], handle, indent=2, ensure_ascii=False)
        path = Path(handle.name)
    try:
        try:
            result = subprocess.run([*shlex.split(editor), str(path)])
        except OSError as err:
            return None, [f"could not start the editor {editor!r} ({err}); set $EDITOR"]
        if result.returncode != 0:
            return None, [f"editor {editor!r} exited with status {result.returncode}; nothing changed"]
        text = path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)
    try:
        edited = json.loads(text)
    except json.JSONDecodeError as err:
        return None, [f"the edited text is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"]
    problems = message_problems(edited)
    return (None, problems) if problems else (edited, [])


def run_review(examples: list[dict], store: DecisionStore, *, reviewer: str | None, console,
               key_reader: Callable[[], str] = read_key, line_reader: Callable[[str], str] = read_line) -> dict:
    """The review loop; returns what happened (counts of actions in this session)."""
    from rich.markup import escape

    actions = {"approved": 0, "rejected": 0, "edited": 0, "skipped": 0, "undone": 0}
    ids = [e["example_id"] for e in examples]
    position = 0
    while position < len(examples):
        example = examples[position]
        console.rule()
        console.print(render(example, store.get(example["example_id"]), position + 1, len(examples)))
        key = key_reader().lower()
        example_id = example["example_id"]
        if key == "q":
            break
        if key == "a":
            store.decide(example_id, "approved", reviewer=reviewer)
        elif key == "s":
            store.decide(example_id, "skipped", reviewer=reviewer)
        elif key == "r":
            reason = line_reader("reason for rejecting (Enter alone cancels): ").strip()
            if not reason:
                console.print("not rejected (no reason given)")
                continue
            store.decide(example_id, "rejected", reason=reason, reviewer=reviewer)
        elif key == "e":
            current = store.get(example_id)
            start = current.messages if current and current.status == "edited" else example["messages"]
            edited, problems = edit_in_editor(start)
            if edited is None:
                console.print("[red]edit not saved:[/red] " + escape("; ".join(problems)))
                continue
            store.decide(example_id, "edited", messages=edited,
                         original_messages=[{"role": m["role"], "content": m["content"]} for m in example["messages"]],
                         reviewer=reviewer)
        elif key == "u":
            undone = store.undo()
            if undone is None:
                console.print("nothing to undo")
                continue
            actions["undone"] += 1
            console.print(f"undid the last decision for {undone}")
            if undone in ids:
                position = ids.index(undone)
            continue
        else:
            console.print(escape(f"unknown key {key!r}: {KEY_HELP}"))
            continue
        actions[store.get(example_id).status] += 1
        position += 1
    else:
        console.print(f"reviewed all {len(examples)} selected examples")
    return actions
