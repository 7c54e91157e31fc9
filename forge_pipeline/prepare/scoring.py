"""A quality score for every example: how much a person should trust it as "a question about their note,
answered in their own words". The filters (quality.py) drop what is unusable; the score ranks what is kept, so
review (`forge curate`, worst first) starts where the doubt is, and a dataset version says how many examples
are doubtful (its Dagster metadata).

`score_example` is a pure function of one example and what the rest of the dataset says about it
(`ExampleContext`): it starts at 1.0 and takes off a penalty per problem found, each with a reason.
Reasons are `name: detail`; the names, and what each costs:

- `placeholder_in_prompt` (0.25): the scrub put a `<PERSON_1>`-style placeholder in the question; the model
  learns to ask about a placeholder.
- `placeholders` (0.05 each, at most 0.3): placeholders in the reply; a few are normal (a name in a journal),
  many mean the reply is mostly about people and reads badly once scrubbed.
- `shared_prompt` (0.3): the same question (case and spaces aside) has different answers elsewhere in the
  dataset: the model is taught to give either, which teaches it nothing.
- `vague_prompt` (0.2): the question names no subject: no word of content (stop words and Forge's question
  frames aside) or only generic ones ("Notes", "Untitled", "Overview"), so it cannot tell this answer from another.
- `template_syntax` (0.4): template or plugin syntax on either side (`<% tp.… %>`, `{{date}}`, `#card`,
  `<< Yesterday | Tomorrow >>` navigation, Dataview query fences).
- `boilerplate` (up to 0.4, proportional to the share): lines of the reply that repeat in many other notes
  (`ExampleContext.boilerplate_lines`, see `boilerplate_lines`): template scaffolding, `Tags:` headers, rules.
- `clipped` (0.3): the reply looks pasted, not written: mostly quote blocks, a `source:`/`url:`/`author:`
  line, a Web Clipper or Readwise marker (`clippings` tag or folder, `## Highlights`), or mostly links.
- `short_reply` (0.2): fewer than SHORT_REPLY_WORDS words of reply; `long_reply` (0.1): more than
  LONG_REPLY_WORDS (it will be cut at train.max_length).
- `cut_mid_sentence` (0.1): the reply's last line is prose that ends without closing punctuation.

The weights are judgement, not measurement: they order examples for review; nothing is dropped by score.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
SHORT_REPLY_WORDS = 20
LONG_REPLY_WORDS = 1500

# Question frames Forge's own prompts use: they say nothing about the subject.
FRAME_WORDS = {
    "thoughts",
    "specifically",
    "particular",
    "tell",
    "learn",
    "learned",
    "explain",
    "describe",
    "think",
    "about",
    "mind",
    "go",
    "went",
    "day",
    "today",
}
# Subjects that name no subject: a prompt about "Notes" or "Untitled" could be about anything.
GENERIC_WORDS = {
    "note",
    "notes",
    "untitled",
    "misc",
    "miscellaneous",
    "stuff",
    "things",
    "thing",
    "ideas",
    "idea",
    "draft",
    "drafts",
    "inbox",
    "index",
    "todo",
    "todos",
    "overview",
    "summary",
    "introduction",
    "intro",
    "general",
    "random",
    "other",
    "others",
    "journal",
    "daily",
    "log",
    "readme",
    "home",
    "page",
    "section",
    "part",
}
TEMPLATE_SYNTAX = re.compile(
    r"<%[-_*]?.*?%>"  # Templater
    r"|\{\{\s*(?:date|time|title)[^}]*\}\}"  # core Templates
    r"|(?:^|\s)#(?:card|flashcards?)(?:/\S*)?\b"  # spaced-repetition plugin tags
    r"|<<\s*[^|<>\n]*\|\s*[^|<>\n]*>>"  # daily-note navigation: << Yesterday | Tomorrow >>
    r"|^```(?:dataview|dataviewjs|query|tasks)\b",  # plugin query blocks
    re.IGNORECASE | re.MULTILINE,
)
SOURCE_LINE = re.compile(
    r"^\s*(?:[-*]\s*)?\**(?:source|url|link|author|original|clipped(?: from)?|via|full title)\**\s*::?\s*\S",
    re.IGNORECASE,
)
CLIPPING_HEADING = re.compile(r"^#{1,6}\s*(?:highlights|clippings?)\b", re.IGNORECASE | re.MULTILINE)
CLIPPING_TAGS = {"clippings", "clipping", "web-clip", "webclip", "readwise", "highlights", "article", "articles"}
CLIPPING_FOLDERS = {"clippings", "readwise", "web clips", "webclips", "articles"}
LINK_ONLY = re.compile(r"^\s*(?:[-*+]\s*|\d+\.\s*)?(?:\[[^\]]*\]\([^)]*\)|<?https?://\S+>?)\s*$")


@dataclass(frozen=True)
class ExampleContext:
    """What the rest of the dataset says about one example."""

    answers_sharing_prompt: int = 1  # distinct replies that have this example's prompt (itself included)
    boilerplate_lines: frozenset[str] = field(default_factory=frozenset)  # normalized lines repeated across notes


@dataclass(frozen=True)
class QualityScore:
    score: float
    reasons: tuple[str, ...]


def _turn(messages: Iterable[dict], role: str) -> str:
    """The last turn of `role` (the question a reply answers, and that reply)."""
    text = ""
    for message in messages:
        if message.get("role") == role:
            text = message.get("content") or ""
    return text


def normalize_line(line: str) -> str:
    return " ".join(line.lower().split())


def normalize_prompt(prompt: str) -> str:
    return " ".join(prompt.lower().split()).rstrip("?.! ")


def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS  # a word list only: no model is loaded

    return frozenset(STOP_WORDS)


def score_example(
    messages: list[dict],
    tags: Iterable[str] = (),
    source_path: str | None = None,
    context: ExampleContext = ExampleContext(),
) -> QualityScore:
    """The example's score in [0, 1] and the reasons for what it lost (see the module docstring)."""
    prompt, reply = _turn(messages, "user"), _turn(messages, "assistant")
    penalties: list[tuple[float, str]] = []
    in_prompt = PLACEHOLDER.findall(prompt)
    if in_prompt:
        penalties.append((0.25, f"placeholder_in_prompt: {', '.join(sorted(set(in_prompt)))}"))
    in_reply = len(PLACEHOLDER.findall(reply))
    if in_reply:
        penalties.append((min(0.3, 0.05 * in_reply), f"placeholders: {in_reply} in the reply"))
    if context.answers_sharing_prompt > 1:
        penalties.append((0.3, f"shared_prompt: {context.answers_sharing_prompt} different answers"))
    stop = _stop_words()
    content = [w for w in WORD.findall(PLACEHOLDER.sub(" ", prompt).lower()) if w not in stop and w not in FRAME_WORDS]
    if not content or all(word in GENERIC_WORDS for word in content):
        penalties.append((0.2, f"vague_prompt: names {' '.join(content) or 'nothing'}"))
    syntax = TEMPLATE_SYNTAX.search(prompt) or TEMPLATE_SYNTAX.search(reply)
    if syntax:
        penalties.append((0.4, f"template_syntax: {syntax.group().strip()[:40]!r}"))
    lines = [line for line in reply.splitlines() if line.strip()]
    prose = prose_lines(reply)
    if prose and context.boilerplate_lines:
        repeated = sum(normalize_line(line) in context.boilerplate_lines for line in prose)
        if repeated:
            share = repeated / len(prose)
            penalties.append((round(min(0.4, 0.1 + 0.5 * share), 2), f"boilerplate: {repeated} of {len(prose)} lines"))
    clipped = _clipping(lines, reply, tags, source_path)
    if clipped:
        penalties.append((0.3, f"clipped: {clipped}"))
    words = len(WORD.findall(reply))
    if words < SHORT_REPLY_WORDS:
        penalties.append((0.2, f"short_reply: {words} words"))
    elif words > LONG_REPLY_WORDS:
        penalties.append((0.1, f"long_reply: {words} words"))
    if lines and _ends_mid_sentence(lines[-1], reply):
        penalties.append((0.1, f"cut_mid_sentence: ends {lines[-1].strip()[-30:]!r}"))
    score = max(0.0, 1.0 - sum(p for p, _ in penalties))
    return QualityScore(round(score, 2), tuple(reason for _, reason in penalties))


def _clipping(lines: list[str], reply: str, tags: Iterable[str], source_path: str | None) -> str | None:
    """Why the reply looks pasted rather than written, or None."""
    tag_hit = sorted({t.lower().lstrip("#") for t in tags or ()} & CLIPPING_TAGS)
    if tag_hit:
        return f"tag {tag_hit[0]!r}"
    folders = {part.lower() for part in (source_path or "").split("/")[:-1]}
    if folders & CLIPPING_FOLDERS:
        return f"folder {sorted(folders & CLIPPING_FOLDERS)[0]!r}"
    if not lines:
        return None
    quoted = sum(line.lstrip().startswith(">") for line in lines)
    if quoted / len(lines) > 0.5:
        return f"{quoted} of {len(lines)} lines are quotes"
    source = next((line.strip() for line in lines if SOURCE_LINE.match(line)), None)
    if source:
        return f"source line {source[:40]!r}"
    if CLIPPING_HEADING.search(reply):
        return "a Highlights/Clippings heading"
    links = sum(bool(LINK_ONLY.match(line)) for line in lines)
    if len(lines) >= 3 and links / len(lines) > 0.5:
        return f"{links} of {len(lines)} lines are links"
    return None


def _ends_mid_sentence(last: str, reply: str) -> bool:
    """Prose whose last line stops without closing punctuation: not a list item, heading, table or code."""
    line = last.strip()
    if reply.rstrip().endswith("```") or line.startswith(("#", "|", "-", "*", "+", ">", "$$")) or line[:1].isdigit():
        return False
    if len(WORD.findall(line)) < 6:  # a label, a sign-off, a caption
        return False
    return not re.search(r"""[.!?:;…)"'”’`*_\]]$""", line)


def prose_lines(text: str) -> list[str]:
    """Non-empty lines outside fenced code and math blocks that hold a letter and are not LaTeX commands: code
    (`}`), math (`\\hline`) and rules repeat everywhere without being anyone's template."""
    out, fence = [], None
    for line in text.splitlines():
        stripped = line.strip()
        marker = next((m for m in ("```", "~~~", "$$") if stripped.startswith(m)), None)
        if marker and (fence is None or fence == marker):
            # `$$ x $$` on one line opens and closes; otherwise a marker toggles its own kind of block
            if not (marker == "$$" and len(stripped) > 2 and stripped.endswith("$$")):
                fence = None if fence else marker
            continue
        if fence is None and not stripped.startswith("\\") and any(ch.isalpha() for ch in line):
            out.append(line)
    return out


def boilerplate_lines(
    groups: Iterable[tuple[str, str]], min_groups: int = 3, min_share: float = 0.01
) -> frozenset[str]:
    """Normalized lines that occur in at least `min_groups` different notes/conversations and at least
    `min_share` of them: text a template or a habit put everywhere, not something written for one note.
    `groups` is (group, reply text) pairs. Headings are left out (a shared `## Summary` is structure)."""
    seen: dict[str, set[str]] = {}
    all_groups: set[str] = set()
    for group, text in groups:
        all_groups.add(group)
        for line in prose_lines(text or ""):
            key = normalize_line(line)
            if not key.startswith("#"):
                seen.setdefault(key, set()).add(group)
    threshold = max(min_groups, min_share * len(all_groups))
    return frozenset(line for line, where in seen.items() if len(where) >= threshold)


QUALITY_COLUMNS = {"quality_score": pl.Float64, "quality_reasons": pl.List(pl.String)}


def score_examples(examples: pl.DataFrame) -> pl.DataFrame:
    """`examples` with `quality_score` and `quality_reasons` columns (QUALITY_COLUMNS), computed over the whole
    table (shared prompts and boilerplate lines are properties of the dataset, not of one example)."""
    from forge_pipeline.catalog.versions import split_group

    rows = examples.select("example_id", "messages", "tags", "source_path", "conversation_id").to_dicts()
    replies_by_prompt: dict[str, set[str]] = {}
    for row in rows:
        messages = row["messages"] or []
        replies_by_prompt.setdefault(normalize_prompt(_turn(messages, "user")), set()).add(
            _turn(messages, "assistant").strip()
        )
    shared = Counter({prompt: len(replies) for prompt, replies in replies_by_prompt.items()})
    repeated = boilerplate_lines((split_group(row), _turn(row["messages"] or [], "assistant")) for row in rows)
    scores, reasons = [], []
    for row in rows:
        messages = row["messages"] or []
        context = ExampleContext(shared[normalize_prompt(_turn(messages, "user"))], repeated)
        result = score_example(messages, row["tags"] or [], row["source_path"], context)
        scores.append(result.score)
        reasons.append(list(result.reasons))
    return examples.with_columns(
        pl.Series("quality_score", scores, dtype=pl.Float64),
        pl.Series("quality_reasons", reasons, dtype=pl.List(pl.String)),
    )


SCORE_BANDS = ((0.8, "good (>= 0.8)"), (0.5, "doubtful (0.5-0.8)"), (0.0, "poor (< 0.5)"))


def score_summary(scored: pl.DataFrame) -> dict:
    """Distribution of `quality_score` and the most frequent reason names: for metadata and check-inputs."""
    values = scored["quality_score"].to_list() if "quality_score" in scored.columns else []
    bands = {label: 0 for _, label in SCORE_BANDS}
    for value in values:
        bands[next(label for floor, label in SCORE_BANDS if value >= floor)] += 1
    reasons = Counter(
        reason.split(":", 1)[0] for row in (scored["quality_reasons"].to_list() if values else []) for reason in row
    )
    ordered = sorted(values)
    return {
        "examples": len(values),
        "mean": round(sum(values) / len(values), 3) if values else None,
        "p10": ordered[int(0.1 * (len(ordered) - 1))] if values else None,
        "median": ordered[(len(ordered) - 1) // 2] if values else None,
        "bands": bands,
        "reasons": dict(reasons.most_common()),
    }


def worst_examples(scored: pl.DataFrame, n: int = 10) -> list[dict]:
    """The `n` lowest-scored examples, worst first (ties by example_id, so the list is stable)."""
    return scored.sort(["quality_score", "example_id"]).head(n).to_dicts()


def quality_report_lines(examples: pl.DataFrame, languages: list[str] | None = None, worst: int = 10) -> list[str]:
    """For `forge check-inputs`: the score distribution of the examples a vault would give, the most frequent
    reasons and the `worst` lowest-scored examples with their reasons (before the scrub: the person's own text on
    their own screen). With `languages` (prepare.filter.languages), examples the scrub would hold back for their
    language are left out, as they are from training."""
    if languages is not None and "language" in examples.columns:
        from forge_pipeline.prepare.pii import held_back_language

        keep = [not held_back_language(lang, languages) for lang in examples["language"].to_list()]
        examples = examples.filter(pl.Series(keep, dtype=pl.Boolean))
    if examples.is_empty():
        return []
    scored = score_examples(examples)
    summary = score_summary(scored)
    lines = [
        f"  quality score (prepare.scoring): mean {summary['mean']}, p10 {summary['p10']}, median "
        f"{summary['median']}; " + ", ".join(f"{label} {n}" for label, n in summary["bands"].items()),
        "  reasons: " + (", ".join(f"{k} {v}" for k, v in summary["reasons"].items()) or "none"),
    ]
    if worst:
        lines.append(f"  the {min(worst, scored.height)} lowest-scored examples (check-inputs --worst N):")
    for row in worst_examples(scored, worst):
        prompt = " ".join(_turn(row["messages"] or [], "user").split())
        lines.append(f"    {row['quality_score']:.2f} {row['source_path'] or row['conversation_id'] or '-'}")
        lines.append(f"      prompt: {prompt[:159] + '…' if len(prompt) > 160 else prompt}")
        lines.append(f"      why: {'; '.join(row['quality_reasons']) or 'no problem found'}")
    return lines
