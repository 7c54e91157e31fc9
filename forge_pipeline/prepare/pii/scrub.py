"""The scrub over a table of examples: placeholders consistent over the dataset, the language gate, the report."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from forge_pipeline.language import held_back_language
from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii.detection import Detection, DetectionCache
from forge_pipeline.prepare.pii.propagation import _NAME_STRIP, detect_corpus
from forge_pipeline.prepare.pii.recognizers import build_analyzer
from forge_pipeline.prepare.pii.vault import vault_markers
from forge_pipeline.records import EXAMPLE_SCHEMA, ColumnType, Quarantine, example_id_for

REPLACEMENT_DTYPE = pl.List(pl.Struct({"entity_type": pl.String, "placeholder": pl.String}))


def _normalise_value(entity_type: str, value: str) -> str:
    if entity_type in {"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"}:
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if entity_type == "PERSON":  # "maren-olsen" (a tag), "Maren Olsen's" and "maren olsen" are one person
        value = _NAME_STRIP.sub("", value.replace("-", " ").replace("_", " "))
    return " ".join(value.split()).casefold()


class PlaceholderMap:
    """value -> `<TYPE_n>`; raw values stay in this in-memory object only."""

    def __init__(self) -> None:
        self._map: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()

    def get(self, entity_type: str, value: str) -> str:
        key = (entity_type, _normalise_value(entity_type, value))
        if key not in self._map:
            self._counts[entity_type] += 1
            self._map[key] = f"<{entity_type}_{self._counts[entity_type]}>"
        return self._map[key]

    def __len__(self) -> int:
        return len(self._map)


@dataclass
class ScrubReport:
    examples: int = 0
    messages: int = 0
    messages_analyzed: int = 0  # messages that went through presidio (the rest came from the cache)
    examples_changed: int = 0
    tags_changed: int = 0
    entity_counts: Counter = field(default_factory=Counter)
    distinct_values: int = 0
    names_propagated: int = 0  # distinct name terms replaced everywhere (see detect_corpus)
    names_kept: Counter = field(default_factory=Counter)  # NER PERSON spans the decision kept, per reason
    quarantine: Quarantine | None = None  # examples held back before the scrub (language), when asked for

    def as_dict(self) -> dict:
        return {
            "examples": self.examples,
            "messages": self.messages,
            "messages_analyzed": self.messages_analyzed,
            "examples_changed": self.examples_changed,
            "tags_changed": self.tags_changed,
            "entity_counts": dict(sorted(self.entity_counts.items())),
            "distinct_values": self.distinct_values,
            "names_propagated": self.names_propagated,
            "names_kept": dict(sorted(self.names_kept.items())),
        }


def _replace(text: str, dets: list[Detection], mapping: PlaceholderMap, found: list[dict], report: ScrubReport) -> str:
    if not dets:
        return text
    parts, last = [], 0
    for d in dets:  # sorted by start: assign numbers in reading order
        placeholder = mapping.get(d.entity_type, text[d.start : d.end])
        parts.append(text[last : d.start] + placeholder)
        last = d.end
        found.append({"entity_type": d.entity_type, "placeholder": placeholder})
        report.entity_counts[d.entity_type] += 1
    return "".join(parts) + text[last:]


def language_gate(rows: list[dict], languages: list[str], cache_dir=None) -> tuple[list[bool], Quarantine]:
    """Which examples may go through the (English) NER, and the quarantine of the others.

    Rule: an example whose prose (code, tables and links left out) is detected as a language outside
    `languages` is held back here, before the scrub: English NER on other languages finds "names" in ordinary
    words and misses real ones, and the quality filter would drop the example anyway. The quarantine row
    names the language and keeps no text (the text was never scrubbed). Texts too short to judge, and an
    empty `languages`, let everything through. The verdict is the `language` column ingest detected (the same
    `detect_language` rule); rows without that column are judged here, cached per example_id (a content hash).
    """
    from pathlib import Path

    from forge_pipeline.prepare.quality import detect_language, line_stats
    from forge_pipeline.records import example_text

    quarantine, keep = Quarantine("scrubbed_examples"), []
    path = Path(cache_dir) / "pii" / f"languages-{LANGUAGE_RULE_VERSION}.parquet" if cache_dir is not None else None
    cached = dict(pl.read_parquet(path).iter_rows()) if path is not None and path.exists() else {}
    fresh = 0
    for row in rows:
        ok = True
        if languages:
            if "language" in row:  # detected once at ingest (training_examples), with the same rule
                lang = row["language"]
            elif row["example_id"] in cached:
                lang = cached[row["example_id"]]
            else:
                prose = line_stats(
                    example_text(
                        {"role": m["role"], "content": m.get("content") or ""}
                        for m in row["messages"] or []
                        if m["role"] != "system"
                    )
                )[2]
                lang = cached[row["example_id"]] = detect_language(prose)
                fresh += 1
            if held_back_language(lang, languages):
                ok = False
                # no file: a path may hold a name, and this runs before the scrub (record_id finds it)
                quarantine.add(
                    reason="language",
                    record_id=row["example_id"],
                    detail=f"detected language {lang!r} not in {languages}; held back before the "
                    "PII scrub (English NER is not run on it), text not kept",
                )
        keep.append(ok)
    if path is not None and fresh:
        from forge_pipeline.atomic import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            pl.DataFrame(
                {"example_id": list(cached), "language": list(cached.values())},
                schema={"example_id": pl.String, "language": pl.String},
            ).write_parquet(tmp)
    return keep, quarantine


LANGUAGE_RULE_VERSION = "3"  # bump when detect_language changes: cached verdicts are rejudged


def known_names_of(frame: pl.DataFrame) -> list[str]:
    """The names ingest found in frontmatter person fields (training_examples' `known_names`; none without it)."""
    if "known_names" not in frame.columns:
        return []
    return frame["known_names"].explode().drop_nulls().unique(maintain_order=True).to_list()


def scrub_examples(
    examples: pl.DataFrame,
    scrub: ScrubSettings,
    analyzer=None,
    *,
    fast: bool = True,
    cache_dir=None,
    languages: list[str] | None = None,
    notes: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, ScrubReport]:
    """Replace PII in every message, tag and source path with consistent placeholders.

    Returns the scrubbed frame (EXAMPLE_SCHEMA columns, a new example_id where content changed, plus
    `original_example_id` and `pii_replacements`) and a report. A `known_names` column (training_examples')
    adds names that are replaced everywhere; it is not part of the output. Empty/None contents pass through unchanged.
    With `cache_dir`, detections are cached per message text, so a re-run analyzes only new messages; the
    placeholder numbering is rebuilt over the whole dataset every time (cheap), so it stays consistent.
    With `languages`, examples in other languages are held back first (`language_gate`; report.quarantine).
    With `notes` (ingest's vault_notes table), the vault says which names are people and which are concepts
    (vault.py): concepts are never replaced as names, people everywhere.
    """
    analyzer = analyzer or build_analyzer(scrub.spacy_model, scrub)
    frame = examples.sort(["created_at", "example_id"], nulls_last=False)
    rows = frame.to_dicts()
    report = ScrubReport()
    if languages is not None:
        keep, report.quarantine = language_gate(rows, languages, cache_dir)
        rows = [r for r, k in zip(rows, keep) if k]
    texts: list[str] = []
    for row in rows:
        texts.extend((m.get("content") or "") for m in (row["messages"] or []))
    cache = DetectionCache(cache_dir, scrub) if cache_dir is not None else None
    found = detect_corpus(
        analyzer,
        texts,
        [list(r["tags"] or []) for r in rows],
        scrub,
        fast=fast,
        cache=cache,
        extras=[r["source_path"] or "" for r in rows],
        known_names=known_names_of(examples),  # every row's, held back ones included: names are corpus-wide
        markers=vault_markers(notes, scrub),
    )
    report.examples, report.messages = len(rows), len(texts)
    report.messages_analyzed = cache.added if cache is not None else len(texts)
    report.names_propagated = found.names
    report.names_kept = found.kept

    mapping, pos = PlaceholderMap(), 0
    out = []
    for i, row in enumerate(rows):
        new_messages: list[dict] = []
        replacements: list[dict] = []
        for m in row["messages"] or []:
            content = m.get("content")
            if content:
                content = _replace(content, found.texts[pos], mapping, replacements, report)
            pos += 1
            new_messages.append({"role": m["role"], "content": content})
        tags = [
            _replace(tag, dets, mapping, replacements, report) for tag, dets in zip(row["tags"] or [], found.tags[i])
        ]
        report.tags_changed += sum(a != b for a, b in zip(tags, row["tags"] or []))
        path = (
            _replace(row["source_path"], found.extras[i], mapping, replacements, report)
            if row["source_path"]
            else row["source_path"]
        )
        changed = bool(replacements)
        report.examples_changed += changed
        out.append(
            {
                **{k: row[k] for k in EXAMPLE_SCHEMA},
                "example_id": example_id_for(new_messages) if changed else row["example_id"],
                "messages": new_messages,
                "tags": tags,
                "source_path": path,
                "original_example_id": row["example_id"],
                "pii_replacements": replacements,
            }
        )
    report.distinct_values = len(mapping)
    schema: dict[str, ColumnType] = {
        **EXAMPLE_SCHEMA,
        "original_example_id": pl.String,
        "pii_replacements": REPLACEMENT_DTYPE,
    }
    result = pl.DataFrame(out, schema=schema) if out else pl.DataFrame(schema=schema)
    return result, report
