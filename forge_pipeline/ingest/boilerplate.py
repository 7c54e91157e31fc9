"""Lines and blocks that are the vault's furniture, not the person's writing, removed before examples are made.

The idea is NeMo Curator's / DataTrove's repeated-line filter, applied per vault: a line written the same way
in many notes came from a template or a habit, not from thought. Rules, on a note's clean body:
- repeated block: a block (lines between blank lines, headings, rules or code fences) whose every line
  appears in at least max(`ingest.boilerplate_min_notes`, `ingest.boilerplate_min_share` x notes) notes
  (`–Notes–`, `[Book Link]()`, `- sdsd` left over from a template). Only whole blocks go: a repeated line
  inside a block of the person's own lines ("1. Open Settings." opening a list of steps) stays.
- header block: a repeated label line (`Tags:`, `upstream:`, `**links**:`) followed in its block only by
  short items (links, tags, a few words each): a template's metadata header, not prose.
- navigation: a line made only of dates, arrows, separators and words such as Yesterday / Tomorrow / Previous /
  Next (`<< Yesterday | Tomorrow >>`, `2024-05-20 - 2024-05-22` from `[[2024-05-20]] - [[2024-05-22]]`).
- rules (`---`, `***`, `___`) and empty list items (`-`, `- TODO:` with no text) are formatting: removed and
  counted, nothing is lost.
Headings are never removed (they give sections their prompts) and neither is anything inside fenced code.
Lines longer than MAX_WORDS words are never boilerplate: a long paragraph that recurs is a passage the person
chose to repeat, not a template's line. What is removed is counted and kept in the quarantine, one row per
distinct text (see `BoilerplateReport`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_WORDS = 25
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^#{1,6}\s")
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$")
_EMPTY_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])(?:\s+(?:TODO|DONE|CANCELLED|IN PROGRESS):)?\s*$")
_NAV_WORDS = r"yesterday|tomorrow|today|previous|prev|next|back|home|index|up|week|month|year|day"
_DATE = r"\d{4}[-_./]\d{1,2}[-_./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{8}|W\d{1,2}"
_NAVIGATION = re.compile(rf"^(?:\s|[<>←→«»|/\\\-–—:·•,()\[\]]|{_DATE}|\b(?:{_NAV_WORDS})\b)+$", re.IGNORECASE)
_SHORT_ITEM_WORDS = 5
_URL_OR_LINK_ONLY = re.compile(r"^\s*(?:[-*+]\s+)?(?:\[[^\]]*\]\([^)]*\)|https?://\S+|#[\w/-]+\s*)+\s*$")


# A metadata field ("Published: 20200703", "upstream: [[Deep Learning]]", "Tags: #Macro") and a link line
# ("[Podcast Link](https://...)") count by their key: the value differs from note to note, the field does not.
_FIELD = re.compile(r"^(?:\*\*)?([A-Za-z][\w ()/'-]{0,24}?)(?:\*\*)?\s*:(?:\*\*)?(?:\s+(.*))?$")
# a value that reads as metadata: a date or number, tags, a link
_META_VALUE = re.compile(r"^(?:[\d\s.,/:-]+|(?:#[\w/-]+\s*)+|\[[^\]]*\]\([^)]*\)|https?://\S+|\S+)$")
_LINK_LINE = re.compile(r"^(?:[-*+]\s+)?\[([^\]]{1,30})\]\([^)]*\)$")


def _key(line: str) -> str:
    line = " ".join(line.split())
    if link := _LINK_LINE.match(line):
        return f"[{link.group(1)}]()"
    field = _FIELD.match(line)
    if field and len(field.group(1).split()) <= 3 and len((field.group(2) or "").split()) <= 8:
        return f"{field.group(1).strip().lower()}: …" if field.group(2) else line
    return line


def _is_navigation(line: str) -> bool:
    # needs a separator or a navigation word: a bare date line is navigation too (a note's own date again)
    if not line.strip() or line.lstrip().startswith("|"):  # a table row is content, its `|---|` a separator
        return False
    return _NAVIGATION.match(line) is not None and re.search(r"[A-Za-z<>←→«»|\d]", line) is not None


def _candidate_lines(body: str) -> set[str]:
    """The distinct lines of a note that could be boilerplate (outside code, not headings, not too long)."""
    found, in_code = set(), False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or not line.strip() or _HEADING.match(line) or len(line.split()) > MAX_WORDS:
            continue
        found.add(_key(line))
        found.add(" ".join(line.split()))
    return found


def repeated_lines(bodies: list[str], min_notes: int, min_share: float) -> dict[str, int]:
    """{line: number of notes it appears in} for lines that appear in enough notes to be boilerplate."""
    frequency: Counter[str] = Counter()
    for body in bodies:
        frequency.update(_candidate_lines(body or ""))
    threshold = max(min_notes, min_share * len(bodies))
    return {line: n for line, n in frequency.items() if n >= threshold}


def common_headings(headings: Sequence[Sequence[str] | None], min_notes: int, min_share: float) -> frozenset:
    """Headings (compared without case or punctuation) that many notes share: a template's scaffolding."""
    frequency: Counter[str] = Counter()
    for note_headings in headings:
        frequency.update({re.sub(r"[\W_]+", "", h).lower() for h in note_headings or []})
    threshold = max(min_notes, min_share * len(headings))
    return frozenset(h for h, n in frequency.items() if n >= threshold and h)


@dataclass
class BoilerplateReport:
    """What was removed across the vault: counts per reason, and one sample per distinct text for the
    quarantine ((reason, text) -> (first note, number of notes))."""

    counts: Counter = field(default_factory=Counter)
    notes_changed: int = 0
    samples: dict[tuple[str, str], list] = field(default_factory=dict)

    def add(self, reason: str, text: str, path: str) -> None:
        self.counts[reason] += 1
        key = (reason, re.sub(r"\d", "0", text) if reason == "navigation" else text)
        entry = self.samples.setdefault(key, [path, 0, text])
        entry[1] += 1


def _short_item(line: str) -> bool:
    return len(line.split()) <= _SHORT_ITEM_WORDS + 1 or _URL_OR_LINK_ONLY.match(line) is not None


def _metadata_block(block: list[str], keys: list[str], repeated: dict[str, int]) -> bool:
    """A block of fields only (`Recorded: 20220906`, `Tags: #AQR`, `[Link](https://...)`), one of them a field
    many notes have and one holding a value that reads as metadata (date, number, tags, link): a header the
    template asked for, not prose ("Pros: fast / Cons: costly" has no such value and stays)."""
    fields = [_FIELD.match(" ".join(line.split())) for line in block]
    if not all(f or _LINK_LINE.match(" ".join(line.split())) for f, line in zip(fields, block, strict=True)):
        return False
    values = [(f.group(2) or "").strip() for f in fields if f]
    has_meta = any(v and _META_VALUE.match(v) for v in values) or any(not f for f in fields)
    return has_meta and any(k in repeated for k in keys)


def strip_boilerplate(body: str, repeated: dict[str, int], path: str, report: BoilerplateReport) -> str:
    """`body` without the furniture described in the module docstring; what went is added to `report`."""
    out: list[str] = []
    block: list[str] = []
    changed = False

    def flush() -> None:
        nonlocal changed
        if not block:
            return
        keys = [_key(line) for line in block]
        if all(k in repeated or " ".join(line.split()) in repeated for k, line in zip(keys, block, strict=True)):
            report.add("boilerplate", "\n".join(" ".join(line.split()) for line in block), path)
            changed = True
        elif keys[0] in repeated and keys[0].rstrip("*_ ").endswith(":") and all(_short_item(k) for k in keys[1:]):
            report.add("header_block", keys[0], path)
            changed = True
        elif _metadata_block(block, keys, repeated):
            report.add("header_block", " / ".join(k for k in keys if k in repeated), path)
            changed = True
        else:
            out.extend(block)
        block.clear()

    in_code = False
    for line in body.split("\n"):
        if _FENCE.match(line):
            flush()
            in_code = not in_code
            out.append(line)
        elif in_code:
            out.append(line)
        elif _RULE.match(line) or _EMPTY_ITEM.match(line):
            flush()
            report.counts["rule" if _RULE.match(line) else "empty_item"] += 1
            changed = True
        elif _is_navigation(line):
            report.add("navigation", " ".join(line.split()), path)
            changed = True
        elif not line.strip() or _HEADING.match(line):
            flush()
            out.append(line)
        else:
            block.append(line)
    flush()
    if changed:
        report.notes_changed += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def keep_boilerplate(
    report: BoilerplateReport, repeated: dict[str, int], notes: int, quarantine, details: dict
) -> None:
    """What boilerplate removal took out: one quarantine row per distinct text, counts for metadata."""
    for (reason, _), (path, times, text) in sorted(report.samples.items(), key=lambda kv: kv[1][0]):
        seen_in = repeated.get(text.split("\n")[0])
        where = f"repeated in {seen_in} of {notes} notes; " if seen_in else ""
        quarantine.add(
            reason=reason,
            file=path,
            detail=f"{where}removed {times} time(s) across the vault (ingest.boilerplate_min_notes / _min_share)",
            payload=text,
        )
    details["boilerplate"] = {
        **dict(sorted(report.counts.items())),
        "notes_changed": report.notes_changed,
        "repeated_lines": len(repeated),
    }
