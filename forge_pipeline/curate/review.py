"""The interactive terminal review behind `forge curate`: one example at a time, one key per decision.

Keys are read from a raw terminal (termios/tty) so a person presses a key without Enter; when stdin is not
a terminal (a pipe), keys are read one character at a time from it, which keeps scripted use possible.
The reject reason is read the same way, so Ctrl-C there quits at once (decisions so far are kept).

An example taller than the terminal is shown shortened, each message cut to its share of the lines, so the
header and the user's turn stay on screen; `v` shows all of it in a pager.
"""

from __future__ import annotations

import codecs
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from forge_pipeline.curate.decisions import Decision, DecisionConflict, DecisionStore
from forge_pipeline.curate.validate import message_problems
from forge_pipeline.errors import ForgeError
from forge_pipeline.records import escape_control
from forge_pipeline.settings import ForgeSettings

FILTER_STATUSES = ("unreviewed", "approved", "rejected", "edited", "skipped", "all")
KEY_HELP = "[a]pprove  [r]eject  [e]dit  [s]kip  [u]ndo  [v]iew all  [q]uit"
INTERRUPT_KEYS = ("\x03", "\x04")  # Ctrl-C, Ctrl-D: quit (in raw mode they arrive as characters, not signals)


class ReviewError(ForgeError, RuntimeError):
    pass


def load_examples(settings: ForgeSettings) -> pl.DataFrame:
    path = settings.paths.tables / "deduplicated_examples.parquet"
    if not path.exists():
        raise ReviewError(f"{path} does not exist: run `forge demo` first (it builds the examples to review)")
    return pl.read_parquet(path)


def select_examples(
    frame: pl.DataFrame,
    decisions: dict[str, Decision],
    *,
    source: str | None = None,
    tag: str | None = None,
    status: str = "unreviewed",
    search: str | None = None,
) -> list[dict]:
    """The examples to review, worst quality score first (`prepare.scoring`; ties and tables without a score in
    table order); `status` filters on the current decision."""
    if status not in FILTER_STATUSES:
        raise ReviewError(f"--status {status!r}: expected one of {', '.join(FILTER_STATUSES)}")
    if source:
        frame = frame.filter(pl.col("source") == source)
    if tag:
        frame = frame.filter(pl.col("tags").list.contains(tag))
    if search:
        needle = search.lower()
        frame = frame.filter(
            pl.col("messages")
            .list.eval(pl.element().struct.field("content").str.to_lowercase().str.contains(needle, literal=True))
            .list.any()
        )
    if "quality_score" in frame.columns:  # doubt first: the reviewer's time goes where it is needed
        frame = frame.with_row_index("_order").sort(["quality_score", "_order"], nulls_last=True).drop("_order")
    rows = []
    for row in frame.iter_rows(named=True):
        decision = decisions.get(row["example_id"])
        current = decision.status if decision else "unreviewed"
        if status == "all" or current == status:
            rows.append(row)
    return rows


def fit_lines(needs: list[int], budget: int) -> list[int]:
    """Lines to show of each message: all of a short one, an equal share of what is left for the long ones
    (at least one line each)."""
    shares = [0] * len(needs)
    pending = sorted(range(len(needs)), key=lambda i: needs[i])
    left = budget
    while pending:
        share = max(1, left // len(pending))
        i = pending.pop(0)
        shares[i] = min(needs[i], share)
        left -= shares[i]
    return shares


def _wrapped(content: str, width: int) -> list[str]:
    import textwrap

    return [piece for line in content.split("\n") for piece in (textwrap.wrap(line, width) or [""])]


def _shorten(content: str, width: int, lines: int) -> str:
    wrapped = _wrapped(content, width)
    if len(wrapped) <= lines:
        return content
    keep = max(lines - 1, 1)
    return "\n".join(wrapped[:keep]) + f"\n… {len(wrapped) - keep} more lines: press v to view all"


def render(example: dict, decision: Decision | None, position: int, total: int, size: tuple[int, int] | None = None):
    """A rich renderable for one example (edited content shown when there is an edit); `size` (width, height)
    shortens the messages so everything fits on one screen."""
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
    if example.get("quality_score") is not None:
        reasons = "; ".join(example.get("quality_reasons") or []) or "no problem found"
        row("quality", f"{example['quality_score']:.2f}  {reasons}")
    row("status", decision.status + (f" ({decision.reason})" if decision.reason else "") if decision else "unreviewed")
    replacements = example.get("pii_replacements") or []
    if replacements:
        counts: dict[str, int] = {}
        for item in replacements:
            label = f"{item.get('entity_type')} → {item.get('placeholder')}"
            counts[label] = counts.get(label, 0) + 1
        row("PII replaced", "; ".join(f"{k} ×{n}" if n > 1 else k for k, n in counts.items()))
    messages = (
        decision.messages if decision and decision.status == "edited" and decision.messages else example["messages"]
    )
    contents = [escape_control(m["content"]) for m in messages]
    if size is not None:
        width, height = size[0] - 4, size[1]  # panel borders and padding take 4 columns
        # Rows left for message text: the header, 2 border lines per panel, the key help, the rule and a prompt.
        budget = height - head.row_count - 2 * len(messages) - 3
        shares = fit_lines([len(_wrapped(c, width)) for c in contents], max(budget, len(messages)))
        contents = [_shorten(c, width, lines) for c, lines in zip(contents, shares)]
    styles = {"system": "magenta", "user": "cyan", "assistant": "green"}
    panels = [
        Panel(
            Text(content),
            title=escape_control(m["role"]),
            title_align="left",
            border_style=styles.get(m["role"], "white"),
        )
        for m, content in zip(messages, contents)
    ]
    return Group(head, *panels, Text(KEY_HELP, style="bold"))


@contextmanager
def _raw_terminal(fd: int):
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        # TCSANOW, not setraw's default TCSAFLUSH: a key typed while the example was still being drawn
        # must count, not be thrown away.
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_key() -> str:
    """One key press, without Enter on a terminal."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        char = sys.stdin.read(1)
        return char or "q"  # end of input quits
    with _raw_terminal(fd):
        char = os.read(fd, 1).decode("utf-8", errors="replace")
    return "q" if char in INTERRUPT_KEYS else char  # Ctrl-C / Ctrl-D quit cleanly


def read_line(prompt: str) -> str | None:
    """A line typed after `prompt`; None when the person pressed Ctrl-C or Ctrl-D (or input ended): quit.

    On a terminal the line is read key by key in raw mode (with backspace), so Ctrl-C acts at once instead of
    waiting for Enter, whether or not it would have raised a signal."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    typed: list[str] = []
    with _raw_terminal(fd):
        # The prompt appears only once the terminal is raw: keys typed as soon as it shows are read here, never by
        # the cooked terminal (where Ctrl-C is a signal that arrives while the terminal is being switched).
        sys.stdout.write(prompt)
        sys.stdout.flush()
        try:
            while True:
                for char in decoder.decode(os.read(fd, 1)):
                    if char in INTERRUPT_KEYS or char in "\r\n":
                        sys.stdout.write("\r\n")  # raw mode: no automatic carriage return
                        sys.stdout.flush()
                        return None if char in INTERRUPT_KEYS else "".join(typed)
                    if char in ("\x7f", "\x08"):
                        if typed:
                            typed.pop()
                            sys.stdout.write("\b \b")
                    elif char.isprintable():
                        typed.append(char)
                        sys.stdout.write(char)
                    sys.stdout.flush()
        except KeyboardInterrupt:  # a Ctrl-C typed before this prompt, delivered as a signal
            return None


def edit_in_editor(text: str) -> tuple[list[dict] | None, list[str], str | None]:
    """Open $VISUAL/$EDITOR on `text` (messages as JSON); returns (messages, problems, the text as saved).

    The saved text comes back even when it is not valid, so a typo can be fixed in the editor again instead of
    losing the whole edit; it is None when the editor could not run."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        handle.write(text)
        path = Path(handle.name)
    try:
        try:
            result = subprocess.run([*shlex.split(editor), str(path)])
        except OSError as err:
            return None, [f"could not start the editor {editor!r} ({err}); set $EDITOR"], None
        if result.returncode != 0:
            return None, [f"editor {editor!r} exited with status {result.returncode}; nothing changed"], None
        text = path.read_text(encoding="utf-8")
    finally:
        path.unlink(missing_ok=True)
    try:
        edited = json.loads(text)
    except json.JSONDecodeError as err:
        return None, [f"the edited text is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"], text
    problems = message_problems(edited)
    return (None, problems, text) if problems else (edited, [], text)


def as_editable(messages: list[dict]) -> str:
    return json.dumps([{"role": m["role"], "content": m["content"]} for m in messages], indent=2, ensure_ascii=False)


def run_review(
    examples: list[dict],
    store: DecisionStore,
    *,
    reviewer: str | None,
    console,
    key_reader: Callable[[], str] = read_key,
    line_reader: Callable[[str], str | None] = read_line,
) -> dict:
    """The review loop; returns what happened (counts of actions in this session)."""
    from rich.markup import escape

    actions = {"approved": 0, "rejected": 0, "edited": 0, "skipped": 0, "undone": 0}
    ids = [e["example_id"] for e in examples]
    position = 0
    while position < len(examples):
        example = examples[position]
        example_id = example["example_id"]
        shown = store.get(example_id)  # what the reviewer decides on; a decision made since by others wins
        console.rule()
        # Shortened to the screen on a terminal; piped output gets everything.
        size = (console.width, console.height) if console.is_terminal else None
        console.print(render(example, shown, position + 1, len(examples), size=size))
        key = key_reader().lower()
        try:
            if key == "q":
                break
            if key == "a":
                decided = store.decide(example_id, "approved", reviewer=reviewer, expected=shown)
            elif key == "s":
                decided = store.decide(example_id, "skipped", reviewer=reviewer, expected=shown)
            elif key == "r":
                reason = line_reader("reason for rejecting (Enter alone cancels, Ctrl-C quits): ")
                if reason is None:
                    break
                if not reason.strip():
                    console.print("not rejected (no reason given)")
                    continue
                decided = store.decide(example_id, "rejected", reason=reason.strip(), reviewer=reviewer, expected=shown)
            elif key == "e":
                edited = _edit(example, shown, console, key_reader)
                if edited is None:
                    continue
                decided = store.decide(
                    example_id,
                    "edited",
                    messages=edited,
                    original_messages=[{"role": m["role"], "content": m["content"]} for m in example["messages"]],
                    reviewer=reviewer,
                    expected=shown,
                )
            elif key == "u":
                undone = store.undo()
                if undone is None:
                    console.print("nothing of yours to undo in this session")
                    continue
                actions["undone"] += 1
                console.print(f"undid the last decision for {undone}")
                if undone in ids:
                    position = ids.index(undone)
                continue
            elif key == "v":
                with console.pager(styles=True):
                    console.print(render(example, shown, position + 1, len(examples)))
                continue
            else:
                console.print(escape(f"unknown key {escape_control(repr(key))}: {KEY_HELP}"))
                continue
        except DecisionConflict as err:
            console.print(f"[yellow]{escape(str(err))}[/yellow]; here it is again")
            continue
        actions[decided.status] += 1
        position += 1
    else:
        console.print(f"reviewed all {len(examples)} selected examples")
    return actions


def _edit(example: dict, shown: Decision | None, console, key_reader: Callable[[], str]) -> list[dict] | None:
    """The edited messages, or None when the person gave up; a broken edit can be reopened as it was saved."""
    from rich.markup import escape

    start = shown.messages if shown and shown.status == "edited" and shown.messages else example["messages"]
    text = as_editable(start)
    while True:
        edited, problems, saved = edit_in_editor(text)
        if edited is not None:
            return edited
        console.print("[red]edit not saved:[/red] " + escape(escape_control("; ".join(problems))))
        if saved is None:
            return None
        text = saved
        console.print("press e to fix it in the editor (your text is kept), any other key to discard the edit")
        if key_reader().lower() != "e":
            return None
