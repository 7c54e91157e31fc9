"""The sections strategy: one example per heading section of a note, the prompt in the shape of the section.

A section is the text under a heading down to the next heading of any level; text before the first heading
is the note's own section. A section gives an example when it has at least `ingest.min_section_words` words
(fenced code does not count; table cells of four words or more do: a table of the person's own stories is
their writing, a lookup table of names and numbers is not). A section
opening with a line that is all bold (`**Core update**`) has that line as its heading. The note's topic is its
title (its first alias when the title is only a date); a title that is only a version ("v1.3.1") takes the
note's folders as its context and keeps the version ("Release notes v1.3.1"). Headings are shown without
emphasis, links, HTML and plugin tags (`#card`). When nothing names the section (a date-titled note with no
heading), its first sentence is the prompt ("<sentence> Tell me more.") and the rest the reply. How the prompt
is phrased is prompts.py's business.
"""

from __future__ import annotations

import re

from forge_pipeline.ingest.prompts import (
    Candidate,
    classify,
    heading_label,
    is_generic_heading,
    is_reading_note,
    norm,
    topic,
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_ANY_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[.\]\s+)?")  # "- ", "2. ", "- [x] "
_BOLD_LINE = re.compile(r"^(?:\*\*|__)([^*_\n]+?)(?:\*\*|__):?$")
_SENTENCE = re.compile(r"^(?:here|this|these|there|it|we|you|i)\b", re.IGNORECASE)
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")


def plain(text: str) -> str:
    """`text` without Markdown emphasis, highlights, link targets, HTML tags and plugin tags (a prompt is a
    question, not formatting)."""
    text = re.sub(r"\[([^\]]+)\]\([^)\s]*\)", r"\1", text)  # [Bases](https://...) -> Bases
    text = re.sub(r"</?[A-Za-z][^<>]*>", "", re.sub(r"(\*\*|__|==)(.+?)\1", r"\2", text))
    text = re.sub(r"(?<!\S)#[A-Za-z_][\w/\-]*", "", text)  # `## Why did I choose this? #card`
    return re.sub(r"\s+", " ", text).strip().strip("*_ ").rstrip(":").strip()


def prose_words(text: str) -> int:
    """Words outside fenced code (a pasted snippet is not the person's writing). In a table, cells of four
    words (with letters) or more count (a table of the person's own stories is their writing); short cells do not (a lookup
    table of names, numbers and shortcuts is reference, not prose), nor does the `|---|` separator row."""
    words, in_code = 0, False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        elif in_code or _TABLE_SEPARATOR.match(line):
            continue
        elif line.lstrip().startswith("|"):
            cells = [[w for w in cell.split() if re.search(r"[^\W\d_]", w)] for cell in line.split("|")]
            words += sum(len(cell) for cell in cells if len(cell) >= 4)
        else:
            words += len(line.split())
    return words


def first_sentence(text: str) -> tuple[str, str]:
    """(opening sentence of the first paragraph, the rest of the text)."""
    text = text.strip()
    first_line, _, after = text.partition("\n")
    parts = _SENTENCE_END.split(first_line, maxsplit=1)
    rest = (parts[1] if len(parts) > 1 else "") + ("\n" + after if after else "")
    return parts[0].strip(), rest.strip()


def opening_sentence(text: str) -> tuple[str, str]:
    """(the first sentence that says something, as plain text; the text without it). Openings such as
    "Released on 2020/04/21." (fewer than three words once dates are gone) stay at the head of the reply."""
    skipped: list[str] = []
    rest = text
    while True:
        sentence, after = first_sentence(rest)
        clean = plain(_LIST_MARKER.sub("", sentence))
        if not after or len(re.findall(r"[^\W\d_]+", topic(clean) or "")) >= 3:
            return clean, "\n".join([*skipped, after]).strip()
        skipped.append(sentence)
        rest = after


def split_sections(body: str) -> list[tuple[list[tuple[int, str]], str]]:
    """[(heading path as (level, text), text directly under that heading)], headings found outside fenced code
    only; the text before the first heading has the empty path."""
    sections: list[tuple[list[tuple[int, str]], list[str]]] = [([], [])]
    stack: list[tuple[int, str]] = []
    in_code = False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        heading = None if in_code else _ANY_HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2).strip()))
            sections.append((list(stack), []))
        else:
            sections[-1][1].append(line)
    return [(path, "\n".join(lines).strip()) for path, lines in sections]


_TASK_ITEM = re.compile(r"^\s*[-*+]\s+(?:TODO|DONE|CANCELLED|IN PROGRESS):")


def _is_task_list(text: str) -> bool:
    """Mostly task items that point elsewhere ("- TODO: [paper](https://...)"): a to-read list of links, not
    writing. A meeting's action items ("- TODO: send the migration plan") are the person's words and stay."""
    lines = [line for line in text.split("\n") if line.strip()]
    tasks = [line for line in lines if _TASK_ITEM.match(line)]
    linked = [line for line in tasks if re.search(r"\]\(|https?://", line)]
    return len(lines) >= 3 and len(tasks) >= 0.6 * len(lines) and len(linked) >= 0.5 * len(tasks)


_LABEL_ONLY = re.compile(
    r"^(?:week|lecture|lesson|chapter|part|module|unit|day|session|episode|section)\s*\d+\s*:?$", re.IGNORECASE
)
_INNER_HEADING = re.compile(r"^\s*(?:[-*+]\s+)?#{1,6}\s+(.+?)\s*$")


def _inner_topics(text: str, most: int = 2) -> str:
    """The first sub-topics a section names inside its lists ("- ### Components of an App")."""
    found, in_code = [], False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        elif (
            not in_code
            and (match := _INNER_HEADING.match(line))
            and (label := heading_label(plain(match.group(1))))
            and not is_generic_heading(label)
        ):
            found.append(label)
            if len(found) == most:
                break
    return ", ".join(found)


def folder_topic(path: str) -> str | None:
    """The note's last two folders that are more than dates or numbers ("Release notes / Mobile" for
    `Release notes/Mobile/v1.4.1.md`): the context of a section whose note title says nothing."""
    folders = [t for part in path.split("/")[:-1] if (t := topic(part))]
    return " / ".join(folders[-2:]) or None


def section_candidates(
    note: dict,
    title: str | None,
    names_note,
    body: str,
    min_words: int,
    template_headings: frozenset = frozenset(),
    skipped: list | None = None,
    vacuous_headings: frozenset = frozenset(),
) -> list[Candidate]:
    """A Candidate for every section of `body` with at least `min_words` words (see the module docstring).
    `title` is the note's topic; `names_note(heading, level)` says whether a heading only restates the note's
    name (an alias counts for a level-1 heading only: "## Reading view" in a note aliased "Reading view" is a
    section of its own). `template_headings` (normalised) are headings most notes share (a template's "Brain
    Dump", "Origin of Thought"): they never stand as a parent in a prompt, they say nothing about the section;
    `vacuous_headings`, those in a large share of the notes, do not stand as the subject either."""
    skipped = skipped if skipped is not None else []  # (reason, detail) of sections left out on purpose
    path = note["path"]
    raw_title = note["title"] or ""
    if title is None and topic(re.sub(r"\d", "", raw_title)) is None and re.search(r"\d", raw_title):
        # a version- or number-titled note ("v1.3.1"): its folders say what it is about, the number which one
        folder = folder_topic(path)
        version = raw_title if not re.fullmatch(r"[\d\W_]*\d{4}[\d\W_]*", raw_title) else None  # not a date
        context = f"{folder} {version}" if folder and version else None
    else:
        context = title
    reading = is_reading_note(path, note.get("tags"))
    out: list[Candidate] = []
    labels: dict[tuple[int, str], str | None] = {}  # a heading is on the path of every section below it

    def label_of(level: int, heading: str) -> str | None:
        if (level, heading) not in labels:
            found = heading_label(plain(heading))
            labels[(level, heading)] = found if found and not names_note(heading, level) else None
        return labels[(level, heading)]

    for heading_path, text in split_sections(body):
        if prose_words(text) < min_words:
            continue
        if _is_task_list(text):
            where = " / ".join(h for _, h in heading_path) or "(top)"
            skipped.append(("task_list", f"section {where}: a to-read list of linked tasks, not writing"))
            continue
        headings = [p for level, h in heading_path if (p := label_of(level, h))]
        if not headings:  # a line that is all bold ("**Core update**") is a heading in all but syntax
            first, _, after = text.partition("\n")
            label = _BOLD_LINE.match(first.strip())
            # a short bold label ("**Core update**"), not a bold sentence ("**Here's a basic command that ...**")
            if (
                label
                and topic(label.group(1))
                and len(label.group(1).split()) <= 6
                and not _SENTENCE.match(label.group(1))
            ):
                headings, text = [plain(label.group(1))], after.strip()
        seed = f"{path}\n" + "\n".join(h for _, h in heading_path)
        top = context or (folder_topic(path) if headings else None)
        if not (top or headings):
            sentence, rest = opening_sentence(text)
            if rest:
                out.append(Candidate("sections", "opening", rest, seed, fixed=f"{sentence} Tell me more.", path=path))
            continue
        # a template's own heading ("Origin of Thought", "Solution/Reasoning") names no subject: the note does
        headings = [h for h in headings if norm(h) not in vacuous_headings or re.search(r"\d", h)]
        subject = headings[-1] if headings else None
        if subject and _LABEL_ONLY.match(subject) and (inner := _inner_topics(text)):
            subject = f"{subject} ({inner})"  # "Week 12" says which week, its own sub-headings say what about
        out.append(
            Candidate(
                "sections",
                classify(subject or top, text, reading),
                text,
                seed,
                subject=subject,
                title=top,
                parents=[h for h in headings[:-1] if norm(h) not in template_headings],
                folder=folder_topic(path),
                path=path,
            )
        )
    return out
