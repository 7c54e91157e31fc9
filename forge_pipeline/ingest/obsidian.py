"""Pure text functions for Obsidian Markdown: frontmatter, tags, links, headings and clean body text.

Nothing here touches the file system, so every rule is testable on a string.

Cleaning rules (what the model should read, not Obsidian's markup):
- `[[Note]]` → `Note`, `[[Note|alias]]` → `alias` (also `[[Note\\|alias]]` inside a table),
  `[[Note#Heading]]` / `[[Note#^block]]` → `Note` (the reader sees the name; `[[Folder/Note]]` → `Note`); a link into the same note,
  `[[#Heading]]`, → `Heading` (never `#Heading`, which would read as a tag); `[[#^block]]` → nothing.
- Block ids (`^b15695` ending a line, or alone on a line) are removed: they are anchors, not words.
- Embeds `![[...]]` are removed: they pull in an image or another note's section that is not this note's text;
  so are Markdown images `![alt](picture.png)` (a file name is not writing).
- Formatting HTML (`<u>`, `<i>`, `<b>`, `<span ...>`, `<mark>`, the underline plugin's tags) is removed, its
  words kept.
- `%% comments %%` are removed (private scratch text, possibly multi-line).
- `==highlight==` → `highlight`.
- Callout markers `> [!note] Title` (and the folding forms `[!note]-` / `[!note]+`) become the plain line
  `Title`, cleaned by these same rules; the `> ` quote prefix of the callout body is dropped so it reads as
  ordinary text.
- Task lines `- [ ] x` / `- [x] x` / `- [-] x` / `- [/] x` stay readable as `- TODO: x` / `- DONE: x` /
  `- CANCELLED: x` / `- IN PROGRESS: x`.
- Footnote references `[^1]` are removed, a definition `[^1]: text` keeps its text, and an inline footnote
  `^[text]` becomes ` (text)`.
- Dataview inline fields: `key:: value` on its own line, `[key:: value]` and `(key:: value)` → `key: value`;
  in a note tagged for the flashcards plugin a `Question::Answer` line is a card and stays as written.
- Fenced code blocks are kept verbatim (the filter stage decides whether code is training text), and so are
  inline code spans and math (`$x$`, `$$...$$`): no rule above is applied inside them.
- Tables stay as Markdown tables (readable as they are).
- Inline `#tags` inside a sentence are left as written; a line that holds nothing but tags is dropped
  (it is metadata, already captured in `tags`).
"""

from __future__ import annotations

import re

import yaml

from forge_pipeline.errors import ForgeError


class FrontmatterError(ForgeError, ValueError):
    """The note's YAML frontmatter cannot be read; the message says what is wrong."""


_FENCE = re.compile(r"^\s*(```|~~~)")
_WIKILINK = re.compile(r"(!?)\[\[([^\]\n]+?)\]\]")
_INLINE_TAG = re.compile(r"(?<![\w/#&])#([A-Za-z0-9_][\w\-/]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_COMMENT = re.compile(r"%%.*?%%", re.DOTALL)
_IMAGE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
# Inline HTML that only formats (the underline plugin writes <u>...</u>): the words stay, the tags go.
_FORMAT_TAG = re.compile(r"</?(?:u|i|b|em|strong|mark|span|font|small|big|center|sup|sub)(?:\s[^<>\n]*)?>", re.I)
_HIGHLIGHT = re.compile(r"==([^=\n]+)==")
_CALLOUT = re.compile(r"^>\s*\[!(\w+)\][+-]?\s*(.*)$")
_TASK = re.compile(r"^(\s*)[-*+]\s+\[(.)\]\s+(.*)$")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
# Spans no rule may rewrite: inline code (any number of backticks), display math, inline math.
# Inline math as Obsidian reads it: no space just inside either `$`, so "$5 and [[x]] $6" is not math.
_PROTECTED = re.compile(r"(`+)[^\n]*?\1|\$\$.*?\$\$|\$[^\s$](?:[^$\n]*?[^\s$])?\$", re.DOTALL)
_BLOCK_ID = re.compile(r"(?:^|\s)\^[A-Za-z0-9-]+\s*$")
_FOOTNOTE_DEF = re.compile(r"^\[\^[^\]\s]+\]:\s*")
_FOOTNOTE_REF = re.compile(r"\[\^[^\]\s]+\]")
_INLINE_FOOTNOTE = re.compile(r"\^\[([^\]\n]+)\]")
_FIELD_LINE = re.compile(r"^(\s*(?:[-*+]\s+)?)([\w][\w \-]*?)::\s*(.*)$")
_FIELD_INLINE = re.compile(r"[\[(]([\w][\w \-]*?)::\s*([^\])\n]*)[\])]")
_TASK_STATES = {" ": "TODO", "x": "DONE", "X": "DONE", "-": "CANCELLED", "/": "IN PROGRESS"}


def split_frontmatter(text: str) -> tuple[dict, str]:
    """Return (frontmatter dict, body). A note without frontmatter gives ({}, text).

    Raises FrontmatterError for an unclosed block, invalid YAML, or YAML that is not a mapping.
    """
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            raw = "\n".join(lines[1:index])
            body = "\n".join(lines[index + 1 :])
            break
    else:
        raise FrontmatterError("frontmatter starts with '---' on line 1 but is never closed by a '---' line")
    try:
        data = yaml.safe_load(raw) if raw.strip() else {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at frontmatter line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise FrontmatterError(f"invalid YAML in frontmatter{where}: {problem}") from None
    except (ValueError, TypeError, RecursionError) as err:
        # PyYAML's constructors raise plain Python errors for values its resolvers accept, e.g.
        # `created: 2026-13-45` (matches the timestamp pattern, then datetime() refuses month 13).
        raise FrontmatterError(f"invalid value in frontmatter: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FrontmatterError(f"frontmatter is a {type(data).__name__}, expected a mapping of fields")
    return _string_keys(data), body


MAX_FRONTMATTER_VALUES = 100_000
MAX_FRONTMATTER_DEPTH = 100


def _string_keys(value, budget: list[int] | None = None, depth: int = 0):
    """Keys as strings at every level: YAML allows `1: x` or `2026-01-01: y`, but the frontmatter is stored as
    sorted JSON, which cannot compare an int key with a str key (it crashed the whole vault read).

    Aliases are expanded here (as JSON would), so a "billion laughs" alias bomb or a self-referencing
    alias (`a: &a [*a]`) is refused by a value budget and a depth limit instead of hanging or crashing."""
    budget = budget if budget is not None else [MAX_FRONTMATTER_VALUES]
    budget[0] -= 1
    if budget[0] < 0:
        raise FrontmatterError(f"frontmatter expands to more than {MAX_FRONTMATTER_VALUES} values (YAML aliases?)")
    if depth > MAX_FRONTMATTER_DEPTH:
        raise FrontmatterError(f"frontmatter nests deeper than {MAX_FRONTMATTER_DEPTH} levels (recursive alias?)")
    if isinstance(value, dict):
        return {str(k): _string_keys(v, budget, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v, budget, depth + 1) for v in value]
    return value


def _prose_lines(body: str):
    """Yield (line, in_code) pairs; fence lines themselves count as code."""
    in_code = False
    for line in body.split("\n"):
        if _FENCE.match(line):
            yield line, True
            in_code = not in_code
            continue
        yield line, in_code


def _expand_tag(tag: str) -> list[str]:
    tag = tag.strip().lstrip("#").strip("/")
    if not tag:
        return []
    parts = tag.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def extract_tags(frontmatter: dict, body: str) -> list[str]:
    """Frontmatter `tags` (list or comma/space string) plus inline `#tags` outside code, nested tags expanded.

    `#a/b` yields both `a` and `a/b`, so filtering on a parent tag finds its children. Sorted, unique.
    """
    found: list[str] = []
    raw = frontmatter.get("tags", frontmatter.get("tag"))
    if isinstance(raw, str):
        raw = [t for t in re.split(r"[,\s]+", raw) if t]
    if isinstance(raw, list):
        for item in raw:
            if item is not None:
                found.extend(_expand_tag(str(item)))
    for line, in_code in _prose_lines(body):
        if in_code or _HEADING.match(line):
            continue
        # `[[#Heading]]` is a link, `#x` in code or math is not a tag.
        for match in _INLINE_TAG.finditer(_WIKILINK.sub(" ", _PROTECTED.sub(" ", line))):
            if not match.group(1).isdigit():  # `#1` is an issue number, not a tag
                found.extend(_expand_tag(match.group(1)))
    return sorted(set(found))


def extract_links(body: str) -> list[str]:
    """Target note names of `[[...]]` links (not embeds), without alias or heading, in order, unique."""
    links: list[str] = []
    for line, in_code in _prose_lines(body):
        if in_code:
            continue
        for match in _WIKILINK.finditer(line):
            if match.group(1):
                continue
            target = match.group(2).split("|", 1)[0].split("#", 1)[0].strip()
            if target and target not in links:
                links.append(target)
    return links


def extract_headings(body: str) -> list[str]:
    """Markdown heading texts (levels 1-6) outside code blocks, in order."""
    return [m.group(2).strip() for line, in_code in _prose_lines(body) if not in_code and (m := _HEADING.match(line))]


def _replace_link(match: re.Match) -> str:
    if match.group(1):
        return ""
    target, _, alias = match.group(2).replace("\\|", "|").partition("|")
    if alias.strip():
        return alias.strip()
    note, _, anchor = target.partition("#")
    if note.strip():
        return note.strip().rsplit("/", 1)[-1]  # [[Notes/MAAS]] reads "MAAS": the folder is not the name
    return "" if anchor.startswith("^") else anchor.strip()  # [[#Heading]] reads as the heading


def clean_body(body: str, keep_cards: bool = False) -> str:
    """Obsidian Markdown → readable text by the rules in the module docstring. keep_cards: the note holds
    flashcards, whose `Question::Answer` lines must stay as written (they are not Dataview fields)."""
    # Comments can span lines but never apply inside code; strip them per prose run.
    out: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            out.extend(_clean_prose("\n".join(prose), keep_cards).split("\n"))
            prose.clear()

    for line, in_code in _prose_lines(body):
        if in_code:
            flush()
            out.append(line)
        else:
            prose.append(line)
    flush()
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _clean_inline(line: str) -> str:
    line = _WIKILINK.sub(_replace_link, line)
    line = _IMAGE.sub("", line)
    line = _FORMAT_TAG.sub("", line)
    line = _HIGHLIGHT.sub(r"\1", line)
    line = _INLINE_FOOTNOTE.sub(r" (\1)", line)
    line = _FOOTNOTE_REF.sub("", line)
    return _FIELD_INLINE.sub(lambda m: f"{m.group(1).strip()}: {m.group(2).strip()}", line)


def _clean_prose(text: str, keep_cards: bool = False) -> str:
    # Code spans and math are swapped for NUL-delimited placeholders (a note never holds NUL: such files are
    # quarantined as binary) so no rule below can rewrite them, then put back verbatim.
    kept: list[str] = []

    def protect(match: re.Match) -> str:
        kept.append(match.group(0))
        return f"\0{len(kept) - 1}\0"

    text = _COMMENT.sub("", _PROTECTED.sub(protect, text))
    lines: list[str] = []
    in_callout = False
    for line in text.split("\n"):
        callout = _CALLOUT.match(line)
        if callout:
            in_callout = True
            lines.append(_clean_inline(callout.group(2)).strip() or callout.group(1).capitalize())
            continue
        if in_callout and line.startswith(">"):
            line = line[1:].lstrip()
        else:
            in_callout = False
        line = _BLOCK_ID.sub("", line)
        if _FOOTNOTE_DEF.match(line):
            line = _FOOTNOTE_DEF.sub("", line)
        task = _TASK.match(line)
        if task:
            state = _TASK_STATES.get(task.group(2), "TODO")
            line = f"{task.group(1)}- {state}: {task.group(3)}"
        field = _FIELD_LINE.match(line)
        if field and not keep_cards and not _TASK.match(line):
            line = f"{field.group(1)}{field.group(2).strip()}: {field.group(3)}"
        line = _clean_inline(line)
        stripped = _INLINE_TAG.sub("", line).strip()
        if not stripped and _INLINE_TAG.search(line):
            continue  # a line of tags only is metadata, not prose
        lines.append(line.rstrip())
    return re.sub("\0(\\d+)\0", lambda m: kept[int(m.group(1))], "\n".join(lines))


def parse_note(text: str, card_tags: tuple[str, ...] = ()) -> dict:
    """Everything the vault reader keeps from one note's text. Raises FrontmatterError. A note tagged with one
    of `card_tags` (the flashcards plugin's tags, or a nested child) keeps its `Q::A` card lines as written."""
    frontmatter, body = split_frontmatter(text)
    tags = extract_tags(frontmatter, body)
    cards = any(t == c or t.startswith(c + "/") for t in tags for c in card_tags)
    return {
        "frontmatter": frontmatter,
        "tags": tags,
        "links": extract_links(body),
        "headings": extract_headings(body),
        "body": clean_body(body, keep_cards=cards),
    }
