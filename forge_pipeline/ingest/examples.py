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

journal — notes named by a date (`2026-03-02.md`, `2026_03_02`, `20260302`, `2026-03-02 Monday`) or by the
vault's own daily-notes format (`.obsidian/daily-notes.json`, e.g. `DD-MM-YYYY - dddd`), one example per entry,
the prompt from the entry's content: its first heading when that names something and has prose under it
("Tell me about your day: <heading>."; reply = the rest), otherwise its first sentence of prose ("<sentence>
How did it go, and what's on your mind?"; reply = the rest of the entry without the daily template's checklist
and time headings).
   Example: `2026-03-02.md` opening "Back at my desk after the long weekend. I spent ..." ->
   "Back at my desk after the long weekend. How did it go, and what's on your mind?" / "I spent ...".

sections — any note: one example per heading section (sections.py has the rules: minimum words, tables
count, bold labels, version-titled notes) with a prompt in the shape of the section (prompts.py: question,
how-to, definition, list, book or course chapter, comparison, example, summary, reflection, claim, explain),
phrased deterministically from the note path and heading path. Topics keep numbers and versions; dates never
make a prompt.
   Example: note "Postgres locks", `## Advisory locks` section -> "Explain Advisory locks in Postgres locks."
A note the sections strategy can take nothing from is quarantined (`no_long_section`); a to-read list of
linked tasks is quarantined as `task_list`.

Before any strategy: lines and blocks the vault repeats in many notes (template furniture: boilerplate.py)
are removed and quarantined, and a note carrying the flashcards plugin's tag gives one example per card
(flashcards.py) besides what the strategies make of the rest. No two different answers share a prompt: a
shared prompt is made specific (parent heading, then folder, then path) or, for two sections of one note under
the same heading, the answers are merged; what is still shared is quarantined (`shared_prompt`).

The note's first heading is dropped from a reply when it is a level-1 heading naming the note (its title or
an alias; a `# Title` restates the prompt); any other first heading is the person's text and stays. A reply
with no text besides headings is quarantined (`empty_reply`).

Conversations: the messages as read, with `ingest.system_prompt` put first when there is no system
message; their source is "conversation", or "import" for files `forge dataset validate --add` accepted. Interaction records: a `corrected_reply` replaces the reply it corrects (the last message; the person said
what it should have been), and the reply chosen in a `choice` between two answers the trailing user turn
(`judged_conversation`): the example is the conversation as the person saw it up to the turn they judged. Such
examples are tagged `correction` / `choice` (`rated_up` for a good rating), which dedup prefers; a `down` rating without a correction is quarantined (`rated_down`), so the
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
from collections.abc import Iterable
from datetime import datetime

import polars as pl

from forge_pipeline.ingest.boilerplate import (
    BoilerplateReport,
    common_headings,
    keep_boilerplate,
    repeated_lines,
    strip_boilerplate,
)
from forge_pipeline.ingest.flashcards import split_cards
from forge_pipeline.ingest.prompts import Candidate, norm, topic, vault_rows
from forge_pipeline.ingest.sections import first_sentence, plain, section_candidates
from forge_pipeline.ingest.vault_config import VaultConfig, daily_note_matcher
from forge_pipeline.language import detect_language
from forge_pipeline.records import (
    EXAMPLE_SCHEMA,
    ColumnType,
    Quarantine,
    example_id_for,
    strip_control,
)
from forge_pipeline.settings import ForgeSettings

TRAINING_EXAMPLES_SCHEMA: dict[str, ColumnType] = {
    **EXAMPLE_SCHEMA,
    "language": pl.String,
    "known_names": pl.List(pl.String),  # raw names for the scrub (see "Known names" above); never kept past it
}

SITUATION_HEADINGS = {"situation", "context", "background", "problem"}
_H2_SPLIT = re.compile(r"^(#{2,6})\s+(.+?)\s*$", re.MULTILINE)


_FENCE = re.compile(r"^\s*(```|~~~)")
_ANY_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_JOURNAL_NAME = re.compile(r"^\d{4}([-_.]?)\d{2}\1\d{2}(?:[ _-]+[A-Za-z]+)?$")


def _is_reflection(tags: list[str], reflection_tags: list[str]) -> bool:
    return any(tag == r or tag.startswith(r + "/") for tag in tags for r in reflection_tags)


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


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
        if name and (found := topic(name)):
            return found
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
    return _norm(heading) in wanted or _norm(topic(heading) or heading) in wanted


_WIKILINK = re.compile(r"\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|([^\]]*))?\]\]")


# A Dataview inline field on its own line (`Creator:: value`, `- **Author**:: value`, `> attendees:: value`).
_INLINE_FIELD = re.compile(r"^[ \t>*-]*\**([A-Za-z][\w -]{0,30}?)\**[ \t]*::[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def _link_names(target: str, alias: str) -> list[str]:
    """A link's file name (no folder: "People/" names no one) and its alias."""
    return [n for n in (target.rsplit("/", 1)[-1].strip(), alias.strip()) if n]


def frontmatter_names(note: dict, fields: list[str], creator_fields: Iterable[str] = ()) -> list[str]:
    """The names in the note's person fields, in its frontmatter or as Dataview inline fields in its body
    (`**Creator**:: [[Anil Seth]]`, a reading-notes template's author line): every string in them (lists and
    nested values too, comma-separated inline values); a wikilink gives its target's file name and its alias
    ("[[People/Ilse Berg|Ilse]]" -> "Ilse Berg", "Ilse"). In `creator_fields` (a source's Creator or Author,
    which also names channels, publishers and sites), a one-word value is no person unless it is an @handle
    ("Contrapoints", "3Blue1Brown", "fs.blog" are not; "Anil Seth" and "@visakanv" are)."""
    wanted = {f.casefold() for f in fields}
    creators = {f.casefold() for f in creator_fields}
    found: list[str] = []

    def walk(value, names: list[str]) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item, names)
        elif isinstance(value, list):
            for item in value:
                walk(item, names)
        elif isinstance(value, str):
            for link in _WIKILINK.finditer(value):
                names.extend(_link_names(link.group(1), link.group(2) or ""))
            rest = _WIKILINK.sub(" ", value).strip()
            if "|" in rest:  # an unquoted [[People/Ilse Berg|Ilse]] reaches here as YAML's nested list of that text
                names.extend(_link_names(*rest.split("|", 1)))
            elif rest:
                names.append(rest)

    def take(key: str, value) -> None:
        names: list[str] = []
        walk(value, names)
        if key in creators:
            names = [n for n in names if len(n.split()) > 1 or n.startswith("@")]
        found.extend(names)

    for key, value in _frontmatter(note).items():
        if key.casefold() in wanted:
            take(key.casefold(), value)
    for field in _INLINE_FIELD.finditer(note.get("body") or ""):
        key = field.group(1).strip().casefold()
        if key in wanted:
            take(key, [v.strip() for v in field.group(2).split(",")])
    return list(dict.fromkeys(found))


def _note_names(note: dict) -> list[str]:
    """The title and aliases, each also without its dates ("Platform sync — 2026-03-03" names the note
    "2026-03-03 Platform sync")."""
    names = [note["title"], *_aliases(note)]
    return names + [t for n in names if (t := topic(n))]


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


def journal_prompt_and_reply(
    note: dict, is_daily=None, template_headings: frozenset = frozenset()
) -> tuple[str, str, str] | None:
    """("journal", prompt, reply) for a date-named note (or one `is_daily` recognises by the vault's own
    daily-notes format), None for any other note. The reply leaves out the daily template's scaffolding: a
    checklist under a heading many notes share ("# Habits"), and headings that are only a time or a calendar
    word ("# Log", "## 09:14"), whose text stays."""
    stem = note["path"].rsplit("/", 1)[-1].removesuffix(".md")
    if not _JOURNAL_NAME.match(stem.strip()) and not (is_daily and is_daily(note["path"])):
        return None
    body = _strip_title_line(note["body"] or "", _note_names(note))
    lines = body.split("\n")
    heading = _ANY_HEADING.match(lines[0]) if lines else None
    if heading and topic(heading.group(2)) is None:  # "# Monday, March 2": the date again
        body = "\n".join(lines[1:]).strip()
        lines = body.split("\n")
        heading = _ANY_HEADING.match(lines[0]) if lines else None
    if heading and (label := topic(plain(heading.group(2)))) and _has_prose(_first_section(lines[1:])):
        return "journal", f"Tell me about your day: {label}.", "\n".join(lines[1:]).strip()
    # a template's scaffolding heading ("# Habits" over a checklist, "# Log", "## 09:14") says nothing about
    # the day: the entry's first sentence of prose does
    sentence, rest = _journal_opening(body)
    if not sentence:
        return "journal", "", ""
    return (
        "journal",
        f"{sentence} How did it go, and what's on your mind?",
        _without_scaffolding(rest, template_headings),
    )


def _without_scaffolding(text: str, template_headings: frozenset) -> str:
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        heading = _ANY_HEADING.match(lines[index])
        if not heading:
            out.append(lines[index])
            index += 1
            continue
        section = _first_section(lines[index + 1 :])
        label = plain(heading.group(2))
        body = [line for line in section if line.strip()]
        if norm(label) in template_headings and all(_TASK_LINE.match(line) for line in body):
            index += 1 + len(section)  # the template's checklist (or its heading left empty)
            continue
        if topic(label) is not None:
            out.append(lines[index])
        index += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


_TASK_LINE = re.compile(r"^\s*[-*+]\s+(?:TODO|DONE|CANCELLED|IN PROGRESS):")


_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _first_section(lines: list[str]) -> list[str]:
    return next(([*lines[:i]] for i, line in enumerate(lines) if _ANY_HEADING.match(line)), lines)


def _has_prose(lines: list[str]) -> bool:
    """Whether some line is prose: not blank, not a heading, not a list or task item."""
    return any(line.strip() and not _ANY_HEADING.match(line) and not _LIST_ITEM.match(line) for line in lines)


def _journal_opening(body: str) -> tuple[str, str]:
    """(the first sentence of prose with at least three words, the entry without it)."""
    lines = body.split("\n")
    for index, line in enumerate(lines):
        if not _has_prose([line]):
            continue
        sentence, rest = first_sentence(line)
        if len(re.findall(r"[^\W\d_]+", topic(plain(sentence)) or "")) >= 3:
            lines[index] = rest
            return plain(sentence), "\n".join(lines).strip()
    return "", body


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
            other_sections = [
                f"{marker} {heading}\n\n{text}".strip()
                for marker, heading, text in sections
                if (marker, heading, text) != situation
            ]
            reply = "\n\n".join(part for part in [preamble, *other_sections] if part)
            context = situation[2].rstrip()
            if context[-1:] not in ".!?":
                context += "."
            return "decision", f"I'm facing this decision: {context} What should I consider?", reply
    if "learning" in tags:
        about = topic(re.sub(r"^what i learned about\s+", "", title, flags=re.IGNORECASE).strip() or title)
        if about is None:  # "What did you learn about 2025-03-24?" asks nothing: open with the text instead
            sentence, rest = first_sentence(body)
            return "learning", f"{sentence} What did you learn?", rest
        return "learning", f"What did you learn about {about}?", body
    if "journal" in tags and note.get("created") is not None:
        created: datetime = note["created"]
        day = f"{created:%A}, {created:%B} {created.day}, {created.year}"
        return "journal", f"How did {day} go? What's on your mind?", body
    title = note_topic(note)
    if title is None:  # a date or version title ("2026-03-05", "1.11.1") is no question; open with the text
        sentence, rest = first_sentence(body)
        return "generic", f"{sentence} Tell me more.", rest
    prompt = f"What are your thoughts on {title}?"
    headings = note.get("headings") or []
    if headings and headings[0].strip().lower() not in title.lower() and title.lower() not in headings[0].lower():
        prompt += f" In particular: {headings[0].strip()}."
    return "generic", prompt, body


def conversation_language(messages: list[dict]) -> str | None:
    """A conversation's language: detect_language over its user and assistant turns (the system prompt is
    Forge's, not the person's)."""
    return detect_language("\n".join(m["content"] for m in messages if m["role"] != "system"))


def judged_conversation(messages: list[dict], reply: str) -> list[dict]:
    """The conversation a person judged, with their reply as its answer: exactly the turns they saw up to the
    turn they judged. A correction's messages end with the reply it corrects, which the correction replaces;
    a choice's messages end with the user turn both replies answered, which the chosen reply answers. Earlier
    assistant turns are history the person saw and stay as they were."""
    if messages and messages[-1]["role"] == "assistant":
        return [*messages[:-1], {"role": "assistant", "content": reply}]
    return [*messages, {"role": "assistant", "content": reply}]


def interaction_tags(conversation: dict) -> list[str]:
    """What a person did to an interaction, as example tags: `correction` (they wrote the reply), `choice` (they
    picked it out of two), `rated_up`. Dedup keeps these over automatic examples; `forge curate review --tag`
    filters by them."""
    if conversation["corrected_reply"]:
        messages = conversation["messages"] or []
        return ["correction"] if messages and messages[-1]["role"] == "assistant" else ["choice"]
    return ["rated_up"] if conversation["rating"] == "up" else []


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


def _apply(
    strategy: str,
    note: dict,
    ingest,
    is_daily=None,
    template_headings: frozenset = frozenset(),
    skipped: list | None = None,
    vacuous_headings: frozenset = frozenset(),
) -> list[Candidate] | None:
    """The examples one strategy makes of a note ([] when it claims the note but finds nothing to use), or
    None when the strategy does not apply to this note."""
    path, title = note["path"], note_topic(note)
    if strategy == "reflection_tags":
        if not _is_reflection(note["tags"] or [], ingest.reflection_tags):
            return None
        rule, prompt, reply = note_prompt_and_reply(note)
        shape = {"decision": "decision", "journal": "journal"}.get(rule, "reflection")
        return [Candidate(strategy, shape, reply, path, title=title, fixed=prompt, path=path)]
    if strategy == "journal":
        made = journal_prompt_and_reply(note, is_daily, template_headings)
        if made is None:
            return None
        # a shared journal prompt ("Tell me about your day: Log.") is told apart by the entry's own name
        return [Candidate(strategy, "journal", made[2], path, title=note["title"], fixed=made[1], path=path)]
    names = _note_names(note)
    body = _strip_title_line(note["body"] or "", names)
    title_names = [note["title"], *([t] if (t := topic(note["title"] or "")) else [])]

    def names_note(heading: str, level: int) -> bool:
        return _names_note(heading, names if level == 1 else title_names)

    return section_candidates(
        note, title, names_note, body, ingest.min_section_words, template_headings, skipped, vacuous_headings
    )


def _flashcards(note: dict, syntax) -> list[Candidate]:
    """The note's flashcards as Q/A candidates; the card lines leave the note's body (the rest is still prose
    for the strategies)."""
    if not syntax.marks(note["tags"] or []):
        return []
    cards, note["body"] = split_cards(note["body"] or "", syntax)
    path = note["path"]
    return [
        Candidate("flashcards", "flashcard", answer, path, title=note_topic(note), fixed=question, path=path)
        for question, answer in cards
    ]


def build_training_examples(
    notes: pl.DataFrame,
    conversations: pl.DataFrame,
    settings: ForgeSettings,
    counts: dict[str, int] | None = None,
    vault_config: VaultConfig | None = None,
    details: dict | None = None,
) -> tuple[pl.DataFrame, Quarantine]:
    """Examples (EXAMPLE_SCHEMA) from notes (by `ingest.extraction`) and conversations, plus what was dropped
    and why. `counts`, when given, receives vault examples per rule (and `excluded` notes). `vault_config` is
    what the vault's `.obsidian/` says (daily-notes format, flashcards); None means the app's defaults.
    `details`, when given, receives what was removed as boilerplate and how prompts were made (for metadata)."""
    ingest = settings.ingest
    vault_config = vault_config or VaultConfig()
    is_daily = daily_note_matcher(vault_config)
    counts = counts if counts is not None else {}
    quarantine = Quarantine("training_examples")
    rows: list[dict] = []
    person_fields = settings.prepare.scrub.person_frontmatter_fields
    creator_fields = settings.prepare.scrub.creator_fields
    names_of: dict[str, list[str]] = {}  # note path -> the names in its person fields
    details = details if details is not None else {}
    repeated = repeated_lines(notes["body"].to_list(), ingest.boilerplate_min_notes, ingest.boilerplate_min_share)
    furniture = BoilerplateReport()
    headings = [[plain(h) for h in hs or []] for hs in notes["headings"].to_list()]
    template_headings = common_headings(headings, ingest.boilerplate_min_notes, ingest.boilerplate_min_share)
    # in a tenth of the vault or more, a template's heading is no subject at all (see sections.py)
    vacuous_headings = common_headings(headings, ingest.boilerplate_min_notes, max(0.1, ingest.boilerplate_min_share))
    made_from: list[tuple[Candidate, dict, list[str]]] = []  # every vault example before its prompt is final
    for note in notes.iter_rows(named=True):
        names_of[note["path"]] = names = frontmatter_names(note, person_fields, creator_fields)
        if not is_selected(note, ingest.include, ingest.exclude):
            counts["excluded"] = counts.get("excluded", 0) + 1
            continue
        note["body"] = strip_boilerplate(note["body"] or "", repeated, note["path"], furniture)
        cards = _flashcards(note, vault_config.flashcards)
        skipped: list[tuple[str, str]] = []
        for strategy in ingest.extraction:
            made = _apply(strategy, note, ingest, is_daily, template_headings, skipped, vacuous_headings)
            if made is not None:
                break
        else:
            made = None
        for reason, detail in skipped:
            quarantine.add(reason=reason, file=note["path"], detail=detail)
        if not made and not cards:
            if made is not None and not skipped:
                quarantine.add(
                    reason="no_long_section",
                    file=note["path"],
                    detail=f"no section has ingest.min_section_words={ingest.min_section_words} words",
                )
            continue
        for cand in [*cards, *(made or [])]:
            cand.reply = strip_control(cand.reply)
            if not cand.prompt().strip() or not any(
                line.strip() and not _ANY_HEADING.match(line) for line in cand.reply.split("\n")
            ):
                quarantine.add(
                    reason="empty_reply",
                    file=note["path"],
                    detail=f"{cand.rule} ({cand.shape}): the note has no text after its title",
                )
                continue
            counts[cand.rule] = counts.get(cand.rule, 0) + 1
            made_from.append((cand, note, names))
    rows.extend(vault_rows(made_from, ingest.system_prompt, quarantine, details))
    for rule, n in details.pop("uncounted", {}).items():  # counts are of examples made, not of candidates
        counts[rule] -= n
    keep_boilerplate(furniture, repeated, notes.height, quarantine, details)
    for conv in conversations.iter_rows(named=True):
        messages = [dict(m) for m in conv["messages"] or []]
        is_interaction = conv["source_format"] == "interaction"
        where = {"file": conv["source_path"], "line": conv["line"], "record_id": conv["conversation_id"]}
        tags = interaction_tags(conv) if is_interaction else []
        if is_interaction and conv["corrected_reply"]:
            messages = judged_conversation(messages, conv["corrected_reply"])
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
                "tags": tags,
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
