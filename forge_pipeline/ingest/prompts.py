"""Prompts that fit the section: what a person would ask of it, in a shape chosen from what the section is.

Topics keep what names them: numbers, versions and chapter titles stay ("Chapter 1: How 80/20 works and why",
"OAuth 2.0", "HTTP1.0 vs HTTP1.1", "The 50th Law"); only full dates are taken out, and a name made of nothing
but dates, numbers and calendar words (real month and day names, whole words: "Marketing" and "Decision" are
not dates) is no topic at all ("2025-03-24", "Monday, March 2", "Week 12", "1.11.1").

Shapes (`classify`), first that fits:
- question: the heading is the person's own question ("Why not SQLite?", "What is a monad") -> the prompt.
- comparison: "A vs B", "Difference between ..." -> "How does A compare with B?".
- howto: a heading that is an instruction ("Create a template", "Installing plugins", "How to ...") or a
  section of three or more numbered steps -> "How do I create a template?".
- chapter: a chapter/part/lesson/volume heading, or a section of reading notes (a note in a Books / Courses /
  Papers / Podcasts ... folder) -> "What are the main ideas of Chapter 1 in <book>?", "What does <book> say
  about <heading>?".
- definition: the section opens by defining its subject ("A monad is ...") -> "What is a monad?".
- list: mostly list items -> "What are the key points about <topic>?".
- explain: anything else -> "What do you know about <heading> in <title>?" and similar phrasings.
Journal entries, reflection notes and flashcards have their own shapes (made by their strategies).

Phrasing within a shape is chosen by a hash of the note path and heading path, so a run is reproducible and a
re-run gives the same prompt. Each candidate can be rendered at increasing levels of context (0: heading and
title; 1: + parent heading; 2: + folder; 3: + the note's path) so `resolve_shared_prompts` can make every prompt
that two different answers share specific enough to tell them apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from forge_pipeline.records import example_id_for, strip_control

_MONTH_NAMES = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_DAY_NAMES = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun"
# Whole words only: "Marketing", "Decision", "Augmented", "Junit", "Octopus" are not calendar words.
CALENDAR_WORDS = re.compile(
    rf"\b(?:{_MONTH_NAMES}|{_DAY_NAMES}|week|weekly|daily|note|journal|log|entry|today|changelog|release|version)\b",
    re.IGNORECASE,
)
# Full dates only (2026-03-02, 2026/03/02, 02.03.2026, 24-03-2025, 20260302): numbers and versions stay.
DATES = re.compile(
    r"(?<![\w.:])(?:\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]m)?|\d{4}[-_./]\d{1,2}[-_./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}|(?:19|20)\d{2}(?:0[1-9]|1[0-2])"
    r"(?:0[1-9]|[12]\d|3[01]))(?![\w])"
)
_NUMBERS = re.compile(r"\bv?\d+(?:[.,/]\d+)*(?:st|nd|rd|th|s)?\b", re.IGNORECASE)
_TAG = re.compile(r"(?<!\S)#[A-Za-z_][\w/\-]*")
_EDGES = re.compile(r"^[\s\-–—:,.;/|()]+|[\s\-–—:,;/|(]+$")


def topic(text: str) -> str | None:
    """`text` without full dates and tags (numbers and versions kept), or None when it names nothing but
    dates, numbers and calendar words."""
    cleaned = re.sub(r"\s+", " ", _TAG.sub(" ", DATES.sub(" ", text or "")))
    cleaned = _EDGES.sub("", cleaned).strip()
    rest = _NUMBERS.sub(" ", CALENDAR_WORDS.sub(" ", cleaned))
    if not re.search(r"[^\W\d_]", rest):
        return None
    return cleaned or None


def heading_label(text: str) -> str | None:
    """A heading as a prompt may name it: its topic, or a numbered label ("Week 1", "Day 3" in a course note
    tell sections apart), but never a date or a time alone ("2025-03-24", "09:14", "Monday, March 2")."""
    if found := topic(text):
        return found
    if re.search(rf"\b(?:{_MONTH_NAMES}|{_DAY_NAMES})\b", text or "", re.IGNORECASE):
        return None  # "Monday, March 2" is a date however it is written
    cleaned = _EDGES.sub("", re.sub(r"\s+", " ", _TAG.sub(" ", DATES.sub(" ", text or "")))).strip()
    return cleaned if re.search(r"\d", cleaned) and re.search(r"[^\W\d_]{2,}", cleaned) else None


_COMPARISON = re.compile(r"\s(?:vs\.?|versus)\s|\bdifferences? between\b|\bcompared (?:to|with)\b", re.IGNORECASE)
_QUESTION_WORDS = re.compile(
    r"^(?:what|why|how|when|where|who|which|should|can|could|is|are|do|does|did|will|would)\b", re.IGNORECASE
)
_HOW_TO = re.compile(r"^how to\s+", re.IGNORECASE)
_STEP_NUMBER = re.compile(r"^(?:step\s*)?\d+[.):]\s+", re.IGNORECASE)
_BARE_QUESTION = re.compile(r"^(what|why|how|when|where|who)\s*\??$", re.IGNORECASE)
# Instruction verbs, by how a sentence or heading that opens with one reads. Both lists below are built from them.
# Verbs that are rarely nouns: a step or a heading that opens with one is an instruction ("Create a template").
_COMMAND_VERBS = (
    "install|set up|configure|create|add|enable|disable|deploy|import|export|change|delete|move|get started"
    "|troubleshoot|fix|upgrade|remove|connect|rename|customi[sz]e|manage|back up|restore|publish|edit|insert"
    "|embed|choose|select|convert|migrate|avoid|prevent|improve|organi[sz]e|write|make"
)
# Verbs (and openers) that make a numbered step an instruction ("Click Settings", "Under Files, ...") but are
# too often nouns or prepositions to make a heading one.
_STEP_OPENERS = (
    "setup|use|build|run|open|update|sync|search|share|link|find|view|switch|start|stop|learn|read|track|download"
    "|click|go|navigate|type|enter|press|scroll|tap|paste|copy|follow|check|wait|sign|log|launch|drag|right-click"
    "|under|in"
)
# Verbs that make a heading an instruction besides _COMMAND_VERBS (rarely seen opening a numbered step).
_HEADING_VERBS = (
    "uninstall|reinstall|apply|browse|register|pin|hide|unlock|invite|cancel|downgrade|verify|reset|recover"
    "|duplicate|archive|assign|log in|sign in|sign up|sign out|log out"
)
# Verbs that are often nouns too ("Open questions", "Run time"): a heading counts with an object of two words.
_NOUN_LIKE_VERBS = "start|stop|run|open|use|build|set|get|find|test|deploy|send|load|save|train|define|handle"
_INSTRUCTION = re.compile(rf"^(?:{_COMMAND_VERBS}|{_STEP_OPENERS})\b", re.IGNORECASE)
# "Creating a template", "Installing plugins": a gerund with an object. Nouns that end in -ing are not steps.
# A heading that is an instruction: a verb that is rarely a noun, and its object ("Create a template").
_INSTRUCTION_HEADING = re.compile(
    rf"^(?:{_COMMAND_VERBS}|{_HEADING_VERBS})\s+\S|^(?:{_NOUN_LIKE_VERBS})\s+\S+\s+\S", re.IGNORECASE
)
_DEICTIC = re.compile(r"\b(?:it|they|them|this|these|those|its|their)\b", re.IGNORECASE)
_OVERVIEW_HEADING = re.compile(r"^(?:introduction|intro|overview|background|abstract)\b", re.IGNORECASE)
_CONCLUSION_HEADING = re.compile(
    r"^(?:conclusions?|concluding remarks|final thoughts|closing thoughts|takeaways?|key takeaways|main takeaways)\b",
    re.IGNORECASE,
)
_DEFINITION_HEADING = re.compile(r"^(?:definitions?|meaning|what is it|what it is)\s*:?$", re.IGNORECASE)
_GERUND = re.compile(
    r"^(?!(?:engineering|marketing|morning|evening|meeting|reading|writing|learning|training|building|thing|something"
    r"|nothing|everything|spring|string|ring|king|wedding|ceiling|clothing|funding|pricing|timing|hosting|logging"
    r"|networking|computing|programming|testing|parsing|caching|routing|rendering|scheduling|understanding"
    r"|working|thinking|feeling|being|setting|painting|drawing|listening|speaking|ending|opening|beginning|concluding"
    r"|closing|remaining|recording|offering|pricing|following|upcoming|outstanding|interesting|missing|existing)\b)"
    r"[A-Z][a-z]+ing\s+\S",
    re.IGNORECASE,
)
_CHAPTER = re.compile(
    r"\b(?:chapter|ch\.|lesson|lecture|module|part|unit|episode|volume|vol\.|book|session|day|week)\s*"
    r"(?:\d+|[ivxlc]+\b|one|two|three|four|five|six|seven|eight|nine|ten)",
    re.IGNORECASE,
)
_READING_FOLDERS = {
    "books",
    "book",
    "book notes",
    "reading",
    "readings",
    "reading notes",
    "courses",
    "course",
    "lectures",
    "papers",
    "research papers",
    "research_papers",
    "podcasts",
    "blogs",
    "articles",
    "literature",
    "literature notes",
    "youtube",
    "videos",
    "talks",
}
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(?=\S)")
# "A monad is ...", "Kubernetes é um ...", "Ein Monoid ist ...": the copula in the vault languages seen most.
_DEFINES = re.compile(
    r"^\s*(?:an?\s+|the\s+|o\s+|a\s+|um\s+|uma\s+|el\s+|la\s+|le\s+|un\s+|une\s+|der\s+|die\s+|das\s+)?"
    r"(.+?)\s*(?:\(.*?\))?\s+(?:is|are|was|refers to|means|describes|denotes|é|são|es|son|est|sont|ist|sind)\s",
    re.I,
)
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|my|me|myself|eu|meu|minha)\b")
# A title that is a claim, not a name ("It's not about time, it's about energy"): an evergreen note.
_CLAIM = re.compile(
    r"\b(?:is|are|isn't|aren't|was|can|can't|should|must|will|won't|makes?|needs?|beats?|not|never|always|don't)\b",
    re.I,
)
_EXAMPLE_HEADING = re.compile(r"^(?:examples?|exemplos?|use cases?|usage|sample|demo)\b", re.I)
_GENERIC_HEADING = re.compile(
    r"^(?:parameters|notes?|details|syntax|options|settings|usage|why|how|what|description|properties|arguments"
    r"|returns|references|resources|links|sources|further reading|see also|misc|other|more|general|background"
    r"|context|problem|solution|results?|discussion|methods?|methodology|limitations|requirements|troubleshooting"
    r"|steps|setup|configuration|pros|cons|advantages|disadvantages|features|summary|overview|introduction"
    r"|conclusions?|takeaways?|key takeaways|main takeaways|tl;?dr)\s*:?$",
    re.I,
)
_SUMMARY_HEADING = re.compile(
    r"^(?:summary|overview|introduction|intro|conclusions?|takeaways?|key takeaways|main takeaways|tl;?dr|abstract"
    r"|resumo|key ideas|main ideas|core ideas|highlights|concluding remarks|final thoughts|closing thoughts)\b",
    re.I,
)


def plain_words(text: str) -> str:
    """The words of a line without emphasis and link markup ("**Open** [Settings](x)" -> "Open Settings")."""
    return re.sub(r"[*_`\[\]]|\([^)]*\)", "", text).strip()


def norm(text: str) -> str:
    """Text compared without case, spaces or punctuation."""
    return _norm(text)


def _norm(text: str) -> str:
    return re.sub(r"[\W_]+", "", text).lower()


def is_generic_heading(text: str) -> bool:
    return bool(_GENERIC_HEADING.match(text) or _BARE_QUESTION.match(text) or _EXAMPLE_HEADING.match(text))


def is_reading_note(path: str, tags: list[str] | None = None) -> bool:
    folders = {part.strip().lower() for part in path.split("/")[:-1]}
    return bool(folders & _READING_FOLDERS) or bool({t.lower() for t in tags or []} & {"book", "books", "course"})


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def classify(subject: str | None, text: str, reading: bool) -> str:
    """The shape of a section about `subject` (its heading, else the note's topic) holding `text`."""
    subject = subject or ""
    lines = _lines(text)
    if subject.endswith("?") or (
        # "What is a monad", "How does DNS work" without "?"; not "Will England" or "How Google Works" (names)
        _QUESTION_WORDS.match(subject) and not _HOW_TO.match(subject) and re.match(r"^\S+\s+[a-z]", subject)
    ):
        return "question"
    if (
        _BARE_QUESTION.match(subject)
        or re.match(r"^(?:why|how)\s", subject, re.IGNORECASE)
        and not _HOW_TO.match(subject)
    ):
        return "question"  # "## Why" under a note, "Why Input Embedding is Needed"
    subject = _STEP_NUMBER.sub("", subject)  # "Step 3: Run the server", "1. Start the Express server"
    if _COMPARISON.search(subject):
        return "comparison"
    # numbered steps: three or more numbered lines, most of them an instruction ("1. Open Settings.")
    steps = [_NUMBERED.sub("", line).strip() for line in lines if _NUMBERED.match(line)]
    instructions = sum(1 for step in steps if _INSTRUCTION.match(plain_words(step)))
    # a gerund title in reading notes names what the author wrote about ("Forecasting linearity"), not a task
    if _HOW_TO.match(subject) or _INSTRUCTION_HEADING.match(subject) or (_GERUND.match(subject) and not reading):
        return "howto"
    if len(steps) >= 3 and instructions >= 0.5 * len(steps):
        return "howto"
    if _CHAPTER.search(subject):
        return "chapter"
    if _SUMMARY_HEADING.match(subject):
        return "summary"
    if _DEFINITION_HEADING.match(subject):
        return "definition"
    first = re.sub(r"[*_`]", "", lines[0]) if lines else ""
    defined = _DEFINES.match(first)
    if subject and defined and _norm(defined.group(1)) in {_norm(subject), _norm(_ARTICLE.sub("", subject))}:
        return "definition"
    if _EXAMPLE_HEADING.match(subject) or _code_share(text) >= 0.5:
        return "example"
    items = sum(1 for line in lines if _LIST_ITEM.match(line))
    if items >= 4 and items >= 0.6 * len(lines):
        return "list"
    if reading:  # a section of notes on a book, course, paper or talk
        return "chapter"
    words = len(text.split())
    if words and len(_FIRST_PERSON.findall(text)) >= max(3, words / 40):
        return "reflection"
    if len(subject.split()) >= 4 and _CLAIM.search(subject):
        return "claim"
    return "explain"


_ARTICLE = re.compile(r"^(?:an?|the|o|a|um|uma|el|la|le|un|une|der|die|das)\s+", re.I)


def _code_share(text: str) -> float:
    """Share of the section's non-blank lines inside fenced code (a section that is mostly a snippet)."""
    code = total = 0
    in_code = False
    for line in text.split("\n"):
        fence = line.lstrip().startswith(("```", "~~~"))
        if fence:
            in_code = not in_code
        if line.strip():
            total += 1
            code += in_code or fence
    return code / total if total else 0.0


def _lower_first(text: str) -> str:
    """ "Create a template" -> "create a template" (only the verb: "OAuth", "API" stay as written)."""
    first, sep, rest = text.partition(" ")
    if len(first) > 1 and first[0].isupper() and first[1:].islower():
        return first.lower() + sep + rest
    return text


def _pick(options: list[str], seed: str) -> str:
    return options[int(hashlib.sha256(seed.encode("utf-8")).hexdigest()[:8], 16) % len(options)]


@dataclass
class Candidate:
    """One example before its prompt is final: its shape and what the prompt may name, from least to most
    specific, so shared prompts can be told apart (see the module docstring)."""

    rule: str  # the strategy that made it (counted per strategy)
    shape: str
    reply: str
    seed: str  # note path + heading path: the phrasing choice
    subject: str | None = None  # last heading (or None: the note's own section)
    title: str | None = None  # the note's topic (title, alias, or folder + version)
    parents: list[str] = field(default_factory=list)  # enclosing headings, nearest last
    folder: str | None = None
    path: str = ""
    fixed: str | None = None  # a prompt the strategy wrote (journal, reflection, flashcard, opening)
    level: int = 0
    merged: bool = False  # its reply went into another candidate with the same prompt (same note)

    def prompt(self, level: int | None = None) -> str:
        level = self.level if level is None else level
        if self.fixed is not None:
            extra = [None, self.title, self.folder, self.path][min(level, 3)] if level else None
            return f"{self.fixed} ({extra})" if extra else self.fixed
        subject, title = self.subject, self.title
        parent = self.parents[-1] if self.parents else None
        generic = _GENERIC_HEADING.match(subject or "") or _EXAMPLE_HEADING.match(subject or "")
        if subject and parent and _norm(subject) in _norm(parent):
            parent = None  # "Disadvantages" under "Advantages and Disadvantages" says it already
        if self.shape == "summary" and subject:
            return _summary_prompt(subject, parent or title or subject, title if parent else None, self.seed)
        if subject and _DEFINITION_HEADING.match(subject):
            subject = parent  # "## Definition" under "Routing": what is routing?
        elif subject and parent and parent.endswith("?") and _EXAMPLE_HEADING.match(subject):
            return f"About {title}: {parent} Give me examples." if title else f"{parent} Give me examples."
        elif subject and parent and generic and not _BARE_QUESTION.match(subject):
            # "Examples", "Parameters" under "## Open note" are about opening a note
            subject = f"{parent}" if _EXAMPLE_HEADING.match(subject) else f"{subject} of {parent}"
        elif level >= 1 and subject and parent:
            subject = f"{subject} ({parent})"
        if level >= 2 and self.folder:
            title = f"{title} ({self.folder})" if title else self.folder
        if level >= 3:
            title = f"{title} ({self.path})" if title else self.path
        return render(self.shape, subject, title, self.seed, parent)


def _summary_prompt(kind: str, thing: str, title: str | None, seed: str) -> str:
    """ "Introduction", "Summary", "Conclusion" name a part, not a subject: ask for that part of the thing."""
    where = f"{thing} in {title}" if title and _norm(title) not in _norm(thing) else thing
    if _OVERVIEW_HEADING.match(kind):
        if kind.lower().startswith("abstract"):
            return f"What is the abstract of {where}?"
        return _pick([f"Give me an overview of {where}.", f"What is {where} about?"], seed)
    if _CONCLUSION_HEADING.match(kind):
        return _pick([f"What are the takeaways of {where}?", f"What do you conclude about {where}?"], seed)
    return _pick([f"Summarise {where}.", f"What are the key ideas of {where}?"], seed)


def render(shape: str, subject: str | None, title: str | None, seed: str, parent: str | None = None) -> str:
    """The prompt of a section of `shape` under heading `subject` (below `parent`) in a note about `title`."""
    about = f"{subject} in {title}" if subject and title else (subject or title or "")
    if shape == "question":
        if subject and (bare := _BARE_QUESTION.match(subject)):  # "## What?" under a note on Static vs Dynamic
            word = bare.group(1).lower()
            thing = parent or title or ""
            return {"what": f"What is {thing}?", "how": f"How does {thing} work?", "why": f"Why {thing}?"}.get(
                word, f"{word.capitalize()} — {thing}?"
            )
        question = (subject or title or "").rstrip("?").rstrip() + "?"
        if parent and title and _DEICTIC.search(question):  # "How are they used?" under "## Serializers"
            return f"About {title}, {parent}: {question}"
        return f"About {title}: {question}" if title and subject and _norm(title) not in _norm(question) else question
    if shape == "comparison":
        name = subject or title or ""
        sides = re.split(r"\s(?:vs\.?|versus)\s", name, maxsplit=1, flags=re.I)
        context = f" (in {title})" if subject and title else ""
        if len(sides) == 2:
            return f"How does {sides[0].strip()} compare with {sides[1].strip()}{context}?"
        return f"What are the differences: {name}{context}?"
    if shape == "howto":
        name = _STEP_NUMBER.sub("", subject or title or "")
        ask = _HOW_TO.sub("", name)
        if _HOW_TO.match(name) or _INSTRUCTION_HEADING.match(name):
            question = f"how do I {_lower_first(ask)}?"
        elif _GERUND.match(name):
            question = f"how do I go about {_lower_first(name)}?"
        else:
            question = f"what are the steps for {name}?"
        if subject and title and _norm(title) not in _norm(subject):
            return f"In {title}, {question}"
        return question[0].upper() + question[1:]
    if shape == "chapter":
        if subject and title:
            options = [f"What are the main ideas of {subject} in {title}?", f"What does {title} say about {subject}?"]
        else:
            options = [f"What did you take away from {about}?", f"What are the main ideas of {about}?"]
        return _pick(options, seed)
    if shape == "definition":
        term = subject or title or ""
        return (
            f"In {title}, what is {term}?"
            if subject and title and _norm(title) not in _norm(term)
            else (f"What is {term}?")
        )
    if shape == "list":
        options = [f"What are the key points about {about}?", f"List the main points on {about}."]
        return _pick(options, seed)
    if shape == "summary":  # "Summary", "Introduction", "Takeaways" say little alone: the title is the subject
        name = f"{subject} of {title}" if subject and title else about
        return _pick([f"Give me the {_lower_first(name)}.", f"What is the {_lower_first(name)}?"], seed)
    if shape == "example":
        if subject and _EXAMPLE_HEADING.match(subject):  # no parent heading: the note is the subject
            return f"Can you show an example of {title or subject}?"
        return _pick([f"Can you show an example of {about}?", f"How does {about} look in practice?"], seed)
    if shape == "reflection":
        return _pick([f"What are your thoughts on {about}?", f"What's your take on {about}?"], seed)
    if shape == "claim":
        claim = (subject or title or "").rstrip(".")
        context = f" (in {title})" if subject and title else ""
        return _pick([f'Why do you say "{claim}"{context}?', f'What do you mean by "{claim}"{context}?'], seed)
    options = [f"What do you know about {about}?", f"Explain {about}.", f"Tell me about {about}."]
    return _pick(options, seed)


def resolve_shared_prompts(candidates: list[Candidate], max_level: int = 3) -> dict[str, int]:
    """Make every prompt that different replies share specific enough to tell them apart: candidates of one
    note under the very same heading path are one question, so their replies are merged; the others are
    raised a context level (parent heading, folder, path) until no prompt is shared or `max_level` is reached
    (the caller quarantines what is still shared). Counts per level and of merged sections."""
    resolved: dict[str, int] = {}
    for level in range(1, max_level + 2):
        groups: dict[str, list[Candidate]] = {}
        for cand in candidates:
            if not cand.merged:
                groups.setdefault(cand.prompt(), []).append(cand)
        shared = [group for group in groups.values() if len({c.reply for c in group}) > 1]
        if not shared:
            break
        for group in shared:
            if len({(c.path, tuple(c.parents)) for c in group}) == 1:
                # "## Search" twice in one note, or "### Example 1" and "### Example 2" under one heading: one
                # question, the note's answers to it in order
                group[0].reply = "\n\n".join(dict.fromkeys(c.reply for c in group))
                for cand in group[1:]:
                    cand.merged = True
                resolved["merged"] = resolved.get("merged", 0) + len(group) - 1
            elif level <= max_level:
                for cand in group:
                    cand.level = level
                resolved[f"level_{level}"] = resolved.get(f"level_{level}", 0) + len(group)
    return resolved


def vault_rows(made: list[tuple[Candidate, dict, list[str]]], system_prompt: str, quarantine, details) -> list[dict]:
    """Rows for the vault's examples, each prompt made specific enough that no two different replies share it
    (parent heading, then folder, then path); one still shared is quarantined (`shared_prompt`)."""
    resolved = resolve_shared_prompts([cand for cand, _, _ in made])
    rows: list[dict] = []
    answers: dict[str, str] = {}
    shapes: dict[str, int] = {}
    uncounted: dict[str, int] = {}  # per strategy: sections merged into another answer or dropped as shared
    dropped = 0
    for cand, note, names in sorted(made, key=lambda item: (item[0].path, item[0].seed)):
        if cand.merged:
            uncounted[cand.rule] = uncounted.get(cand.rule, 0) + 1
            continue
        prompt = strip_control(cand.prompt())
        if answers.setdefault(prompt, cand.reply) != cand.reply:
            dropped += 1
            uncounted[cand.rule] = uncounted.get(cand.rule, 0) + 1
            quarantine.add(
                reason="shared_prompt",
                file=cand.path,
                detail="another section of the vault gives a different answer to the same prompt, even with its "
                "heading path and folder; rename one of the headings",
                payload=prompt,
            )
            continue
        shapes[cand.shape] = shapes.get(cand.shape, 0) + 1
        messages = [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": cand.reply},
        ]
        example_id = example_id_for(messages)
        details.setdefault("shape_of", {})[example_id] = cand.shape
        rows.append(
            {
                "example_id": example_id,
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
    # the promise the dataset makes: one prompt, one answer (identical duplicates are the dedup stage's)
    shared: dict[str, set[str]] = {}
    for row in rows:
        shared.setdefault(row["messages"][1]["content"], set()).add(row["messages"][2]["content"])
    assert all(len(replies) == 1 for replies in shared.values()), "a prompt is shared by different answers"
    details["prompt_shapes"] = dict(sorted(shapes.items()))
    details["shared_prompts"] = {**resolved, "dropped": dropped}
    details["uncounted"] = uncounted
    return rows
