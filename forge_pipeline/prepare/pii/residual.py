"""The residual check behind `no_residual_pii`: what PII is left in a scrubbed table, grouped per value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii.detection import (
    DENY_ENTITY,
    NER_ENTITIES,
    PLACEHOLDER_RE,
    Detection,
    DetectionCache,
    _inside,
    code_regions,
    has_code,
)
from forge_pipeline.prepare.pii.propagation import NameIndex, detect_corpus, mentions
from forge_pipeline.prepare.pii.recognizers import build_analyzer
from forge_pipeline.prepare.pii.scrub import known_names_of
from forge_pipeline.prepare.pii.spans import url_regions
from forge_pipeline.prepare.pii.vault import vault_markers


@dataclass
class FlaggedValue:
    """One value the residual check flags, grouped over the whole table (what `no_residual_pii` shows a person).

    Holds the raw value and a raw context snippet: in memory only; mask both before they are printed, logged
    or stored (`mask_value`, `masked_context`). `signal` names what found it (several joined by ",", in the
    order they found it): "structured" (a pattern/validator
    over the scrubbed text), "decision" (the scrub's own name decision says it must be gone, yet it is there),
    "per_message" (presidio on that message alone, no corpus help, and the decision did not keep it on
    purpose), "vault_person" (a name the vault marks as a person). `setting` is the setting that would change
    the verdict (e.g. "prepare.scrub.allow_list")."""

    value: str
    entity_type: str
    count: int  # occurrences left in the scrubbed table (messages and tags)
    example_ids: list[str]  # scrubbed example ids holding it, first MAX_FLAG_EXAMPLES, in table order
    context: str  # up to CONTEXT_CHARS either side of the first occurrence, on one line
    signal: str
    setting: str | None = None


MAX_FLAG_EXAMPLES = 5
CONTEXT_CHARS = 40


def mask_value(value: str) -> str:
    """`tips` -> `t***`, `Maren Olsen` -> `M**** O****`: the first letter of each word, the rest starred."""
    return " ".join(w[:1] + "*" * max(len(w) - 1, 3) for w in value.split()) or "***"


def masked_context(flag: FlaggedValue) -> str:
    """The flag's context with every occurrence of its value masked (any letter case)."""
    return re.sub(re.escape(flag.value), lambda m: mask_value(m.group()), flag.context, flags=re.IGNORECASE)


def _snippet(text: str, start: int, end: int) -> str:
    left = text[max(0, start - CONTEXT_CHARS) : start]
    right = text[end : end + CONTEXT_CHARS]
    return " ".join(f"{'...' if start > CONTEXT_CHARS else ''}{left}{text[start:end]}{right}...".split())


def group_flags(hits: list[tuple[str, str, str, str, int, int, str | None]]) -> list[FlaggedValue]:
    """(example_id, entity_type, signal, text, start, end, setting) hits -> one FlaggedValue per (type,
    value in lower case), most frequent first."""
    groups: dict[tuple[str, str], FlaggedValue] = {}
    for eid, entity, signal, text, start, end, setting in hits:
        value = text[start:end]
        key = (entity, " ".join(value.split()).casefold())
        flag = groups.get(key)
        if flag is None:
            groups[key] = FlaggedValue(value, entity, 1, [eid], _snippet(text, start, end), signal, setting)
        else:
            flag.count += 1
            if signal not in flag.signal.split(","):
                flag.signal += "," + signal
            if eid not in flag.example_ids and len(flag.example_ids) < MAX_FLAG_EXAMPLES:
                flag.example_ids.append(eid)
    return sorted(groups.values(), key=lambda f: (-f.count, f.entity_type, f.value.casefold()))


def _fields(frame: pl.DataFrame) -> tuple[list[tuple[str, int]], list[str], list[list[str]]]:
    """(example id, message index), the message's text and, for its first message, the example's tags."""
    locs: list[tuple[str, int]] = []
    texts: list[str] = []
    tags: list[list[str]] = []
    for eid, messages, row_tags in frame.select("example_id", "messages", "tags").iter_rows():
        for j, m in enumerate(messages or []):
            locs.append((eid, j))
            texts.append(m.get("content") or "")
            tags.append(list(row_tags or []) if j == 0 else [])
    return locs, texts, tags


@dataclass
class ResidualReport:
    """What the residual check found: `rows` ([{example_id, message, entity_type, score}], no raw values: safe
    for logs) and `flagged` (one FlaggedValue per value with its count and context: raw, mask before showing)."""

    rows: list[dict] = field(default_factory=list)
    flagged: list[FlaggedValue] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.rows


def find_residual_pii(
    frame: pl.DataFrame,
    scrub: ScrubSettings,
    analyzer=None,
    *,
    original: pl.DataFrame | None = None,
    cache_dir=None,
    notes: pl.DataFrame | None = None,
) -> list[dict]:
    """check_residual_pii's rows: [{example_id, message, entity_type, score}] (no raw values)."""
    return check_residual_pii(frame, scrub, analyzer, original=original, cache_dir=cache_dir, notes=notes).rows


def check_residual_pii(
    frame: pl.DataFrame,
    scrub: ScrubSettings,
    analyzer=None,
    *,
    original: pl.DataFrame | None = None,
    cache_dir=None,
    notes: pl.DataFrame | None = None,
) -> ResidualReport:
    """PII left in scrubbed examples (messages, tags, source paths), outside Forge's own placeholders.

    1. structured: the recognizers for e-mail, phone, card, IBAN, IP, SSN, address and the deny list over the
       scrubbed text (cached like the scrub, under their own signature). The NER is not re-run on scrubbed
       text: with placeholders in it, it reads a different sentence ("Chrome or <PERSON_1>" made "Chrome" a
       name) and would contradict the scrub.
    With `original` (the table before the scrub; only the rows the scrub kept are read) and the same `notes`:
    2. decision / vault_person: the scrub's own name decision (decision.py), rebuilt from the original table
       and the vault, says which names must be gone where; any such occurrence left in a message, tag or
       source path is flagged ("vault_person" when the vault marks the name as a person, else "decision"). A
       value the scrub kept on purpose (a concept, a word in lower case) is not flagged: the same rule kept it.
    3. per_message: presidio on each original message on its own, without the corpus's help (no
       propagation): every PERSON it finds there that the decision does not keep must be gone from that same
       scrubbed message; a miss of the corpus logic is not a pass.
    Rows carry no raw values (safe for logs); `flagged` groups them per value with a raw context snippet.
    """
    analyzer = analyzer or build_analyzer(scrub.spacy_model, scrub)
    locs, texts, tags = _fields(frame)
    structured = scrub.model_copy(
        update={"entities": [e for e in scrub.entities if e not in NER_ENTITIES], "propagate_names": False}
    )
    # Cached like the scrub's own detections (its own signature: structured entities only), so a re-run
    # analyzes only the scrubbed texts it has not checked before instead of every text again.
    structured_cache = DetectionCache(cache_dir, structured) if cache_dir is not None else None
    found = detect_corpus(analyzer, texts, tags, structured, cache=structured_cache)
    residual, hits = [], []

    def flag(eid, where, entity, signal, text, start, end, setting, score=1.0):
        residual.append({"example_id": eid, "message": where, "entity_type": entity, "score": round(score, 3)})
        hits.append((eid, entity, signal, text, start, end, setting))

    def outside_placeholders(text, dets, eid, j):
        holders = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(text)]
        for d in dets:
            if not any(d.start < e and d.end > s for s, e in holders):
                setting = "prepare.scrub.deny_list" if d.entity_type == DENY_ENTITY else "prepare.scrub.entities"
                flag(eid, j, d.entity_type, "structured", text, d.start, d.end, setting, d.score)

    for (eid, j), text, dets, row_tags, tag_dets in zip(locs, texts, found.texts, tags, found.tags):
        outside_placeholders(text, dets, eid, j)
        for tag, td in zip(row_tags, tag_dets):
            outside_placeholders(tag, td, eid, -1)
    if original is None or not original.height or "PERSON" not in scrub.entities:
        return ResidualReport(residual, group_flags(hits))
    if "original_example_id" in frame.columns:
        original = original.filter(pl.col("example_id").is_in(frame["original_example_id"].to_list()))
    o_locs, o_texts, o_tags = _fields(original)
    cache = DetectionCache(cache_dir, scrub) if cache_dir is not None else None
    corpus = detect_corpus(
        analyzer,
        o_texts,
        o_tags,
        scrub,
        cache=cache,
        known_names=known_names_of(original),
        markers=vault_markers(notes, scrub),
    )
    decision = corpus.decision
    names = NameIndex(decision.names | decision.persons)
    persons = NameIndex(decision.persons)

    def decided(text, where, eid, index):
        regions = [*(code_regions(text) if scrub.skip_code and has_code(text) else []), *url_regions(text)]
        for start, end, term in index.find(text):
            key = " ".join(term)
            if decision.replaces(key, text, start, end) and not _inside(Detection("PERSON", start, end, 1.0), regions):
                signal = "vault_person" if key in decision.persons else "decision"
                flag(eid, where, "PERSON", signal, text, start, end, "prepare.scrub.allow_list")

    paths = frame["source_path"].to_list()
    for (eid, j), text, row_tags in zip(locs, texts, tags):
        decided(text, j, eid, names)
        for tag in row_tags:
            decided(tag, -1, eid, names)
    for eid, path in zip(frame["example_id"].to_list(), paths):
        if path:
            decided(path, -2, eid, persons)
    # 3. each original message alone: its own PERSON detections must be gone from the scrubbed message
    if "original_example_id" in frame.columns:
        own = {
            loc: [(t[d.start : d.end]) for d in dets if d.entity_type == "PERSON"]
            for loc, t, dets in zip(o_locs, o_texts, corpus.own)
        }
        to_original = dict(zip(frame["example_id"].to_list(), frame["original_example_id"].to_list()))
        for (eid, j), text in zip(locs, texts):
            values = list(dict.fromkeys(own.get((to_original[eid], j), [])))
            skip = [*(code_regions(text) if values and has_code(text) else []), *(url_regions(text) if values else [])]
            for value in values:
                for start, end in mentions(text, value, skip):
                    flag(eid, j, "PERSON", "per_message", text, start, end, "prepare.scrub.allow_list")
    return ResidualReport(residual, group_flags(hits))
