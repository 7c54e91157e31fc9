"""Turn notes and conversations into chat training examples (EXAMPLE_SCHEMA).

Notes: `ingest.include` / `ingest.exclude` choose which notes may become examples (selectors
`folder:Journal`, `tag:private`, `frontmatter:publish=false`; a bare `frontmatter:draft` matches a truthy
field). Each remaining note is offered to the strategies of `ingest.extraction` in order, and the first one
that applies claims it (default: reflection_tags, journal, sections, so an untagged vault still gives one
example per section). Every example's reply is the person's own text; prompts never come from a date or a
version number. The strategy that made an example is its `rule` (counted in the asset's metadata).

reflection_tags — notes carrying one of `ingest.reflection_tags` (or a nested child such as
`reflection/work`), one example per note, the prompt by the first rule that applies:
1. Decision (`decision` tag) with a situation section (a heading named Situation, Context, Background or
   Problem): prompt = "I'm facing this decision: <that section's text> What should I consider?";
   reply = every other section (Options / Decision / Why ...), headings kept as Markdown.
2. Learning (`learning` tag): prompt = "What did you learn about <topic>?", where topic is the title
   without a leading "What I learned about"; reply = the body.
3. Journal (`journal` tag): prompt = "How did <weekday, month day, year of `created`> go? What's on your
   mind?"; reply = the body.
4. Anything else (including a decision without a situation section): prompt = "What are your thoughts on
   <title>?" plus " In particular: <first heading>." when the first heading says something the title does
   not; reply = the body. A title that is only a date or version (and no alias says more) gives
   "<first sentence> Tell me more." and the rest of the body instead.
   Example: `reflection/work` note "Team health" -> "What are your thoughts on Team health?"

journal — notes named by a date (`2026-03-02.md`, `2026_03_02`, `20260302`, `2026-03-02 Monday`), one
example per entry, the prompt from the entry's content: its first heading when that says more than a date
("Tell me about your day: <heading>."; reply = the rest), otherwise its opening sentence ("<sentence> How
did it go, and what's on your mind?"; reply = the rest of the entry).
   Example: `2026-03-02.md` opening "Back at my desk after the long weekend. I spent ..." ->
   "Back at my desk after the long weekend. How did it go, and what's on your mind?" / "I spent ...".

sections — any note: one example per heading section (the text under a heading down to the next heading
of any level; text before the first heading counts as the note's own section) with at least
`ingest.min_section_words` words of prose (words in fenced code and
table rows do not count: a pasted table is not the person's writing). The topic is the note's title (its first alias when the title is only a
date or version) followed by the heading path, with dates, version numbers and emphasis markers taken out; the
prompt is "What are your thoughts on <title>?" or "What are your thoughts on <title>, specifically <h2> / <h3>?".
A heading that is a question is the prompt itself ("About <title>: Why not SQLite?"). A section opening with a
line that is all bold (`**Core update**`) has that line as its heading. When the title is only a date or
version, the note's last two folders stand in for it next to a heading (`Release notes/v1.3.1.md`,
`## Improvements` -> "What are your thoughts on Release notes, specifically Improvements?"). When nothing is
left of the topic (a `1.11.1` note under a `2025-03-24` heading), the section's first sentence is the prompt
("<sentence> Tell me more.") and the rest the reply.
   Example: note "Postgres locks", `## Advisory locks` section -> "What are your thoughts on Postgres locks,
   specifically Advisory locks?" / the section's text.
A note the sections strategy can take nothing from is quarantined (`no_long_section`).

The note's first heading is dropped from a reply when it is a level-1 heading naming the note (its title or
an alias; a `# Title` restates the prompt); any other first heading is the person's text and stays. A reply
with no text besides headings is quarantined (`empty_reply`).

Conversations: the messages as read, with `ingest.system_prompt` put first when there is no system
message; their source is "conversation", or "import" for files `forge dataset validate --add` accepted. Interaction records: a `corrected_reply` replaces the last assistant message (the person said
what it should have been), and the reply chosen in a `choice` between two answers the trailing user turn; a `down` rating without a correction is quarantined (`rated_down`), so the
model is not trained on a reply its user rejected. Trailing user messages after the last assistant reply
are trimmed (nothing answers them). Examples with no user turn or no assistant turn are quarantined
(`no_user_turn` / `no_assistant_turn`).

Control characters (ESC, BEL, CR, ... everything but newline and tab) are removed from every message: a
reply holding `\x1b]0;TITLE\x07` would otherwise be trained on and replayed into a reviewer's terminal.

Language: every example has a `language` column (TRAINING_EXAMPLES_SCHEMA = EXAMPLE_SCHEMA + language): a
note's examples take the note's language detected when the vault was read; a conversation's is detected on
its user and assistant turns. Codes are langdetect's ISO 639-1 codes; null means too little text to tell.
What happens to non-English text is the prepare stage's rule.

Known names: a `known_names` column (in TRAINING_EXAMPLES_SCHEMA only; the scrub consumes it and nothing past
it has it) holds the names in a note's `prepare.scrub.person_frontmatter_fields` (`attendees: [Maren Olsen,
olu]`, `with: "[[People/Ilse Berg|Ilse]]"`). The scrub replaces them everywhere in the dataset, so it does
not matter which row carries them: names of notes that give no example (excluded, quarantined) ride on the
first example, so a name known anywhere in the vault is still known.

Output order: by example_id (then source and path, so duplicates are ordered deterministically too).
Duplicates are kept: removing them is the dedup stage's job.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

import polars as pl

from forge_pipeline.language import detect_language
from forge_pipeline.records import (
    EXAMPLE_SCHEMA,
    Quarantine,
    example_id_for,
    strip_control,
)
from forge_pipeline.settings import ForgeSettings

TRAINING_EXAMPLES_SCHEMA: dict[str, pl.DataType] = {
    **EXAMPLE_SCHEMA,
    "language": pl.String,
    "known_names": pl.List(pl.String),  # raw names for the scrub (see "Known names" above); never kept past it
}

SITUATION_HEADINGS = {"situation", "context", "background", "problem"}
_H2_SPLIT = re.compile(r"^(#{2,6})\s+(.+?)\s*$", re.MULTILINE)


_FENCE = re.compile(r"^\s*(```|~~~)")
_ANY_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_JOURNAL_NAME = re.compile(r"^\d{4}([-_.]?)\d{2}\1\d{2}(?:[ _-]+[A-Za-z]+)?$")
# Dates (2026-03-02, 2026/03/02, 20260302, 02.03.2026), version numbers (1.11.1, v2.0) and bare numbers: a
# prompt made of these ("What are your thoughts on 1.11.1?") teaches nothing.
_DATE_OR_VERSION = re.compile(
    r"\b(?:\d{4}[-_./]\d{1,2}[-_./]\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{8}"
    r"|v?\d+(?:\.\d+)+|\d+(?:st|nd|rd|th)?)\b",
    re.IGNORECASE,
)
_CALENDAR_WORDS = re.compile(
    r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
    r"[a-z]*\b|\b(?:week|daily|note|journal|log|entry|today|changelog|release|version)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[.\]\s+)?")  # "- ", "2. ", "- [x] "
_BOLD_LINE = re.compile(r"^(?:\*\*|__)([^*_\n]+?)(?:\*\*|__):?$")


def _is_reflection(tags: list[str], reflection_tags: list[str]) -> bool:
    return any(tag == r or tag.startswith(r + "/") for tag in tags for r in reflection_tags)


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


def _topic(text: str) -> str | None:
    """`text` without dates and version numbers, or None when nothing but dates, numbers and calendar words
    is left ("2026-03-24", "1.11.1", "Monday, March 2", "Weekly note 12")."""
    cleaned = _DATE_OR_VERSION.sub(" ", text)
    if not re.search(r"[^\W\d_]", _CALENDAR_WORDS.sub(" ", cleaned)):
        return None
    cleaned = re.sub(r"\s+", " ", cleaned)
    return re.sub(r"^[\s\-–—:,.;/|()]+|[\s\-–—:,;/|(]+$", "", cleaned) or None


def _frontmatter(note: dict) -> dict:
    try:
        front = json.loads(note.get("frontmatter") or "{}")
    except ValueError:
        return {}
    return front if isinstance(front, dict) else {}


def _aliases(note: dict) -> list[str]:
    raw = _frontmatter(note).get("aliases", _frontmatter(note).get("alias"))
    if isinstance(raw, str):
        raw = [raw]
    return [str(a) for a in raw if a is not None] if isinstance(raw, list) else []


def note_topic(note: dict) -> str | None:
    """What the note is about: its title, or its first alias that is more than a date or version."""
    for name in [note["title"], *_aliases(note)]:
        if name and (topic := _topic(name)):
            return topic
    return None


def _strip_title_line(body: str, names: list[str] | None = None) -> str:
    """The body without a leading `# H1` that names the note (title or alias, compared without case or
    punctuation); every other first line is the person's text. names=None keeps any H1."""
    lines = body.strip().split("\n")
    match = _ANY_HEADING.match(lines[0]) if lines else None
    if match and len(match.group(1)) == 1 and names is not None and _names_note(match.group(2), names):
        lines = lines[1:]
    return "\n".join(lines).strip()


def _names_note(heading: str, names: list[str]) -> bool:
    wanted = {_norm(n) for n in names}
    return _norm(heading) in wanted or _norm(_topic(heading) or heading) in wanted


_WIKILINK = re.compile(r"\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|([^\]]*))?\]\]")


def _link_names(target: str, alias: str) -> list[str]:
    """A link's file name (no folder: "People/" names no one) and its alias."""
    return [n for n in (target.rsplit("/", 1)[-1].strip(), alias.strip()) if n]


def frontmatter_names(note: dict, fields: list[str]) -> list[str]:
    """The names in the note's person fields: every string in them (lists and nested values too); a wikilink
    gives its target's file name and its alias ("[[People/Ilse Berg|Ilse]]" -> "Ilse Berg", "Ilse")."""
    wanted = {f.casefold() for f in fields}
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            for link in _WIKILINK.finditer(value):
                found.extend(_link_names(link.group(1), link.group(2) or ""))
            rest = _WIKILINK.sub(" ", value).strip()
            if "|" in rest:  # an unquoted [[People/Ilse Berg|Ilse]] reaches here as YAML's nested list of that text
                found.extend(_link_names(*rest.split("|", 1)))
            elif rest:
                found.append(rest)

    for key, value in _frontmatter(note).items():
        if key.casefold() in wanted:
            walk(value)
    return list(dict.fromkeys(found))


def _note_names(note: dict) -> list[str]:
    """The title and aliases, each also without its dates ("Platform sync — 2026-03-03" names the note
    "2026-03-03 Platform sync")."""
    names = [note["title"], *_aliases(note)]
    return names + [t for n in names if (t := _topic(n))]


def _prose_words(text: str) -> int:
    """Words outside fenced code and table rows: what the person wrote, not a pasted table or snippet."""
    words, in_code = 0, False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
        elif not in_code and not line.lstrip().startswith("|"):
            words += len(line.split())
    return words


def _first_sentence(text: str) -> tuple[str, str]:
    """(opening sentence of the first paragraph, the rest of the text)."""
    text = text.strip()
    first_line, _, after = text.partition("\n")
    parts = _SENTENCE_END.split(first_line, maxsplit=1)
    rest = (parts[1] if len(parts) > 1 else "") + ("\n" + after if after else "")
    return parts[0].strip(), rest.strip()


def _split_sections(body: str) -> list[tuple[list[str], str]]:
    """[(heading path, text directly under that heading)], headings found outside fenced code only; the text
    before the first heading has the empty path."""
    sections: list[tuple[list[str], list[str]]] = [([], [])]
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
            sections.append(([h for _, h in stack], []))
        else:
            sections[-1][1].append(line)
    return [(path, "\n".join(lines).strip()) for path, lines in sections]


def _sections(body: str) -> tuple[str, list[tuple[str, str, str]]]:
    """(text before the first sub-heading, [(marker, heading, text), ...]) for the decision rule."""
    matches = list(_H2_SPLIT.finditer(body))
    if not matches:
        return body.strip(), []
    preamble = body[: matches[0].start()].strip()
    sections = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        sections.append((match.group(1), match.group(2).strip(), body[match.end() : end].strip()))
    return preamble, sections


def journal_prompt_and_reply(note: dict) -> tuple[str, str, str] | None:
    """("journal", prompt, reply) for a date-named note, None for any other note."""
    stem = note["path"].rsplit("/", 1)[-1].removesuffix(".md")
    if not _JOURNAL_NAME.match(stem.strip()):
        return None
    body = _strip_title_line(note["body"] or "", _note_names(note))
    lines = body.split("\n")
    heading = _ANY_HEADING.match(lines[0]) if lines else None
    if heading and _topic(heading.group(2)) is None:  # "# Monday, March 2": the date again
        body = "\n".join(lines[1:]).strip()
        lines = body.split("\n")
        heading = _ANY_HEADING.match(lines[0]) if lines else None
    if heading:
        return "journal", f"Tell me about your day: {heading.group(2).strip()}.", "\n".join(lines[1:]).strip()
    sentence, rest = _first_sentence(body)
    if not sentence:
        return "journal", "", ""
    return "journal", f"{sentence} How did it go, and what's on your mind?", rest


def _folder_topic(note: dict) -> str | None:
    """The note's last two folders that are more than dates or versions ("Release notes / Mobile" for
    `Release notes/Mobile/v1.4.1.md`): the context of a section whose note title says nothing."""
    folders = [t for part in note["path"].split("/")[:-1] if (t := _topic(part))]
    return " / ".join(folders[-2:]) or None


def _plain(text: str) -> str:
    """`text` without Markdown emphasis, highlights, link targets and HTML tags (a prompt is a question, not
    formatting)."""
    text = re.sub(r"\[([^\]]+)\]\([^)\s]*\)", r"\1", text)  # [Bases](https://...) -> Bases
    return re.sub(r"</?[A-Za-z][^<>]*>", "", re.sub(r"(\*\*|__|==)(.+?)\1", r"\2", text)).strip()


def _section_prompt(title: str | None, headings: list[str]) -> str:
    """The prompt for a section under `headings` of a note about `title` (see the module docstring)."""
    if headings and headings[-1].endswith("?"):  # the person's own question ("Why not SQLite?") is the prompt
        return f"About {title}: {headings[-1]}" if title else headings[-1]
    if title and headings:
        return f"What are your thoughts on {title}, specifically {' / '.join(headings)}?"
    return f"What are your thoughts on {title or ' / '.join(headings)}?"


def section_prompts_and_replies(note: dict, min_words: int) -> list[tuple[str, str, str]]:
    """[("sections", prompt, reply)] for every heading section of the note with at least `min_words` words."""
    title = note_topic(note)
    names = _note_names(note)
    out = []
    for path, text in _split_sections(_strip_title_line(note["body"] or "", names)):
        if _prose_words(text) < min_words:
            continue
        headings = [_plain(t) for h in path if (t := _topic(h)) and not _names_note(h, names)]
        if not headings:  # a line that is all bold ("**Core update**") is a heading in all but syntax
            first, _, after = text.partition("\n")
            if (label := _BOLD_LINE.match(first.strip())) and _topic(label.group(1)):
                headings, text = [label.group(1).rstrip(":").strip()], after.strip()
        if title or headings:
            # a version- or date-titled note ("Release notes/v1.3.1.md"): its folders say what it is about
            context = title or (_folder_topic(note) if headings else None)
            out.append(("sections", _section_prompt(context, headings), text))
        else:
            sentence, rest = _opening_sentence(text)
            if rest:
                out.append(("sections", f"{sentence} Tell me more.", rest))
    return out


def _opening_sentence(text: str) -> tuple[str, str]:
    """(the first sentence that says something, as plain text; the text without it). Openings such as
    "Released on 2020/04/21." (fewer than three words once dates are gone) stay at the head of the reply."""
    skipped, rest = [], text
    while True:
        sentence, after = _first_sentence(rest)
        plain = _plain(_LIST_MARKER.sub("", sentence))
        if not after or len(re.findall(r"[^\W\d_]+", _topic(plain) or "")) >= 3:
            return plain, "\n".join([*skipped, after]).strip()
        skipped.append(sentence)
        rest = after


def selector_matches(selector: str, note: dict) -> bool:
    """Whether `note` matches one `ingest.include`/`exclude` selector (forms in the module docstring)."""
    kind, _, value = selector.partition(":")
    value = value.strip()
    if kind == "folder":
        folder = value.strip("/")
        return note["path"].startswith(folder + "/") or note["path"] == folder
    if kind == "tag":
        tag = value.lstrip("#")
        return any(t == tag or t.startswith(tag + "/") for t in note["tags"] or [])
    key, has_value, wanted = value.partition("=")
    field = _frontmatter(note).get(key.strip())
    if not has_value:
        return bool(field)
    values = field if isinstance(field, list) else [field]
    return any(str(v).strip().lower() == wanted.strip().lower() for v in values if v is not None)


def is_selected(note: dict, include: list[str], exclude: list[str]) -> bool:
    if include and not any(selector_matches(s, note) for s in include):
        return False
    return not any(selector_matches(s, note) for s in exclude)


def note_prompt_and_reply(note: dict) -> tuple[str, str, str]:
    """(rule name, user prompt, assistant reply) for one reflection note, by the module's rules."""
    tags = set(note["tags"] or [])
    title = note["title"]
    body = _strip_title_line(note["body"] or "", _note_names(note))
    if "decision" in tags:
        preamble, sections = _sections(body)
        situation = next((s for s in sections if s[1].lower().rstrip(":") in SITUATION_HEADINGS), None)
        if situation is not None and situation[2]:
            rest = [
                f"{marker} {heading}\n\n{text}".strip()
                for marker, heading, text in sections
                if (marker, heading, text) != situation
            ]
            reply = "\n\n".join(part for part in [preamble, *rest] if part)
            context = situation[2].rstrip()
            if context[-1:] not in ".!?":
                context += "."
            return "decision", f"I'm facing this decision: {context} What should I consider?", reply
    if "learning" in tags:
        topic = re.sub(r"^what i learned about\s+", "", title, flags=re.IGNORECASE).strip() or title
        return "learning", f"What did you learn about {topic}?", body
    if "journal" in tags and note.get("created") is not None:
        created: datetime = note["created"]
        day = f"{created:%A}, {created:%B} {created.day}, {created.year}"
        return "journal", f"How did {day} go? What's on your mind?", body
    topic = note_topic(note)
    if topic is None:  # a date or version title ("2026-03-05", "1.11.1") is no question; open with the text
        sentence, rest = _first_sentence(body)
        return "generic", f"{sentence} Tell me more.", rest
    title = topic
    prompt = f"What are your thoughts on {title}?"
    headings = note.get("headings") or []
    if headings and headings[0].strip().lower() not in title.lower() and title.lower() not in headings[0].lower():
        prompt += f" In particular: {headings[0].strip()}."
    return "generic", prompt, body


def conversation_language(messages: list[dict]) -> str | None:
    """A conversation's language: detect_language over its user and assistant turns (the system prompt is
    Forge's, not the person's)."""
    return detect_language("\n".join(m["content"] for m in messages if m["role"] != "system"))


def _check_turns(messages: list[dict]) -> str | None:
    roles = {m["role"] for m in messages}
    if "user" not in roles:
        return "no_user_turn"
    if "assistant" not in roles:
        return "no_assistant_turn"
    return None


def _clean(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": strip_control(m["content"])} for m in messages]


def _with_system(messages: list[dict], system_prompt: str) -> list[dict]:
    if messages and messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def _apply(strategy: str, note: dict, ingest) -> list[tuple[str, str, str]] | None:
    """The examples one strategy makes of a note ([] when it claims the note but finds nothing to use), or
    None when the strategy does not apply to this note."""
    if strategy == "reflection_tags":
        return [note_prompt_and_reply(note)] if _is_reflection(note["tags"] or [], ingest.reflection_tags) else None
    if strategy == "journal":
        made = journal_prompt_and_reply(note)
        return None if made is None else [made]
    return section_prompts_and_replies(note, ingest.min_section_words)


def build_training_examples(
    notes: pl.DataFrame, conversations: pl.DataFrame, settings: ForgeSettings, counts: dict[str, int] | None = None
) -> tuple[pl.DataFrame, Quarantine]:
    """Examples (EXAMPLE_SCHEMA) from notes (by `ingest.extraction`) and conversations, plus what was dropped
    and why. `counts`, when given, receives vault examples per rule (and `excluded` notes)."""
    ingest = settings.ingest
    counts = counts if counts is not None else {}
    quarantine = Quarantine("training_examples")
    rows: list[dict] = []
    person_fields = settings.prepare.scrub.person_frontmatter_fields
    names_of: dict[str, list[str]] = {}  # note path -> the names in its person fields
    for note in notes.iter_rows(named=True):
        names_of[note["path"]] = names = frontmatter_names(note, person_fields)
        if not is_selected(note, ingest.include, ingest.exclude):
            counts["excluded"] = counts.get("excluded", 0) + 1
            continue
        for strategy in ingest.extraction:
            made = _apply(strategy, note, ingest)
            if made is not None:
                break
        else:
            continue
        if not made:
            quarantine.add(
                reason="no_long_section",
                file=note["path"],
                detail=f"no section has ingest.min_section_words={ingest.min_section_words} words",
            )
            continue
        for rule, prompt, reply in made:
            prompt, reply = strip_control(prompt), strip_control(reply)
            if not prompt.strip() or not any(
                line.strip() and not _ANY_HEADING.match(line) for line in reply.split("\n")
            ):
                quarantine.add(
                    reason="empty_reply", file=note["path"], detail=f"rule {rule}: the note has no text after its title"
                )
                continue
            counts[strategy] = counts.get(strategy, 0) + 1
            messages = [
                {"role": "system", "content": ingest.system_prompt},
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": reply},
            ]
            rows.append(
                {
                    "example_id": example_id_for(messages),
                    "messages": messages,
                    "source": "vault",
                    "source_path": note["path"],
                    "conversation_id": None,
                    "created_at": note["created"],
                    "tags": list(note["tags"] or []),
                    "language": note.get("language"),
                    "known_names": names,
                }
            )
    for conv in conversations.iter_rows(named=True):
        messages = [dict(m) for m in conv["messages"] or []]
        is_interaction = conv["source_format"] == "interaction"
        where = {"file": conv["source_path"], "line": conv["line"], "record_id": conv["conversation_id"]}
        if is_interaction and conv["corrected_reply"]:
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            if last is None:
                messages.append({"role": "assistant", "content": conv["corrected_reply"]})
            else:
                messages[last] = {"role": "assistant", "content": conv["corrected_reply"]}
        elif is_interaction and conv["rating"] == "down":
            quarantine.add(reason="rated_down", detail="rated down and no corrected_reply", payload=messages, **where)
            continue
        problem = _check_turns(messages)
        while not problem and messages[-1]["role"] == "user":
            messages.pop()
        if problem:
            quarantine.add(
                reason=problem,
                detail=f"{conv['source_format']} conversation has {problem.replace('_', ' ')}",
                payload=conv["messages"],
                **where,
            )
            continue
        messages = _with_system(_clean(messages), ingest.system_prompt)
        source = {"interaction": "interaction", "import": "import"}.get(conv["source_format"], "conversation")
        rows.append(
            {
                "example_id": example_id_for(messages),
                "messages": messages,
                "source": source,
                "source_path": conv["source_path"],
                "conversation_id": conv["conversation_id"],
                "created_at": conv["created_at"],
                "tags": [],
                "language": conversation_language(messages),
                "known_names": [],
            }
        )
    placed = {r["source_path"] for r in rows if r["source"] == "vault"}
    unplaced = [n for path, names in names_of.items() if path not in placed for n in names]
    if rows and unplaced:  # names of notes that gave no example: still known to the scrub (see the docstring)
        rows[0]["known_names"] = list(dict.fromkeys([*rows[0]["known_names"], *unplaced]))
    frame = (
        pl.DataFrame(rows, schema=TRAINING_EXAMPLES_SCHEMA) if rows else pl.DataFrame(schema=TRAINING_EXAMPLES_SCHEMA)
    )
    return frame.sort(["example_id", "source", "source_path", "conversation_id"], nulls_last=True), quarantine
