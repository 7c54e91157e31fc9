"""presidio over texts (batched spaCy, cached per text) and Forge's per-text rules on its results: the score
threshold, ORG/LOC spans after a person cue counted as names, names inside code left alone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from forge_pipeline.prepare.config import ScrubSettings

PLACEHOLDER_RE = re.compile(r"<[A-Z_]+_\d+>")
DENY_ENTITY = "DENY_LIST"

# spaCy refuses texts over nlp.max_length and its memory grows with length; far below that keeps memory flat.
CHUNK_CHARS = 50_000
MIN_TEXTS_PER_PROCESS = 250

# Entity types that come from the NER model. Everything else is a structured value found by a pattern or a
# validator, and is replaced even inside code (a real e-mail in a config snippet is still an e-mail).
NER_ENTITIES = {"PERSON", "NRP", "LOCATION", "ORGANIZATION", "DATE_TIME"}
ORG_LOC = ("ORGANIZATION", "LOCATION")
# A person cue right before an ORG/LOC span makes it a name: "coffee with Maren", "told Ilse", "from Olu".
# Places follow "to/from/in" far more often than names do, so a LOCATION needs one of the narrower cues.
ORG_CUE_RE = re.compile(
    r"(?:\b(?:with|w/|to|from|told|tell|and|asked|ask|met|call|called|texted|text|thanks|thank|"
    r"dear|hi|hey|love|for)|&)\s+$",
    re.IGNORECASE,
)
LOC_CUE_RE = re.compile(
    r"\b(?:with|w/|told|tell|and|asked|ask|met|called|texted|thanks|thank|dear|hi|hey)\s+$", re.IGNORECASE
)
# Words spaCy often calls a PERSON that name nobody: kinship and role words ("Mum's address is ...").
NOT_NAMES = {
    "mum",
    "mom",
    "mummy",
    "mommy",
    "dad",
    "daddy",
    "mother",
    "father",
    "mama",
    "papa",
    "grandma",
    "grandpa",
    "granny",
    "nan",
    "nana",
    "gran",
    "sis",
    "bro",
    "aunt",
    "auntie",
    "uncle",
    "boss",
    "doctor",
    "babe",
    "honey",
    "lol",
    "haha",
}

FENCE_RE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
INLINE_CODE_RE = re.compile(r"(`+)[^`\n]+?\1")
# math as Obsidian reads it (ingest keeps it verbatim): $$...$$, or $...$ with no space just inside either $
MATH_RE = re.compile(r"\$\$.+?\$\$|\$[^\s$](?:[^$\n]*?[^\s$])?\$", re.DOTALL)


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


DETECTOR_VERSION = "5"  # 5: phone regions on digit runs, address formats, ORG/LOC kept raw. Bump on recognizer changes


def _signature(scrub: ScrubSettings) -> str:
    import hashlib

    parts = [
        DETECTOR_VERSION,
        scrub.spacy_model,
        ",".join(sorted(_requested(scrub))),
        str(scrub.score_threshold),
        "\x1f".join(sorted(scrub.allow_list)),
        ",".join(scrub.phone_regions),
        str(scrub.address_patterns),
    ]
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]


def _requested(scrub: ScrubSettings) -> list[str]:
    """Entity types asked of presidio: the configured ones, plus ORG/LOC when they may turn out to be names."""
    extra = [t for t in ORG_LOC if scrub.org_loc_as_person and "PERSON" in scrub.entities and t not in scrub.entities]
    return [*scrub.entities, *extra]


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
        frame = pl.DataFrame(
            {
                "key": list(self.entries),
                "detections": [
                    [{"entity_type": t, "start": a, "end": b, "score": sc} for t, a, b, sc in v]
                    for v in self.entries.values()
                ],
            },
            schema={"key": pl.String, "detections": dtype},
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            frame.write_parquet(tmp)


def _analyze_raw(analyzer, texts: list[str], scrub: ScrubSettings, fast: bool) -> list[list[Detection]]:
    """presidio's results per text, before Forge's rules (thresholds of ORG/LOC, code, propagation, merge).
    An analyzer with its own `analyze_raw` (forge_pipeline.runtime's Ray analyzer) runs this step itself."""
    if hasattr(analyzer, "analyze_raw"):
        return analyzer.analyze_raw(texts, scrub, fast)
    pieces: list[tuple[int, int, str]] = []  # (text index, offset, chunk)
    for i, text in enumerate(texts):
        if text and text.strip():
            pieces.extend((i, off, chunk) for off, chunk in chunk_text(text))
    requested = _requested(scrub)
    # ORG/LOC come back below the threshold (presidio scales them down as unreliable): fetch them at any
    # score and let _apply_rules decide; everything else is cut at the configured threshold as before.
    threshold = 0.0 if len(requested) > len(scrub.entities) else scrub.score_threshold
    kwargs: dict[str, Any] = {
        "language": "en",
        "entities": requested,
        "score_threshold": threshold,
        "allow_list": scrub.allow_list or None,
    }
    results: list[list[Detection]] = [[] for _ in texts]
    if fast:
        # worker processes cost a fork and IPC per batch: only worth it for a few hundred texts per worker
        n_process = scrub.n_process if len(pieces) >= MIN_TEXTS_PER_PROCESS * scrub.n_process else 1
        # presidio's public batch API: spaCy's nlp.pipe over all texts, one NlpArtifacts per text, handed to
        # analyze() (the same calls BatchAnalyzerEngine makes, without its dict/list wrapping).
        batches = analyzer.nlp_engine.process_batch(
            [c for _, _, c in pieces], language="en", batch_size=scrub.batch_size, n_process=n_process
        )
        raw = (
            analyzer.analyze(text=c, nlp_artifacts=artifacts, **kwargs)
            for (_, _, c), (_, artifacts) in zip(pieces, batches)
        )
    else:
        raw = (analyzer.analyze(text=c, **kwargs) for _, _, c in pieces)
    for (i, off, _), found in zip(pieces, raw):
        results[i].extend(Detection(r.entity_type, r.start + off, r.end + off, r.score) for r in found)
    return results


def has_code(text: str) -> bool:
    return "`" in text or "~~~" in text or "$" in text


def code_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of fenced code blocks, inline `code` spans and math (`$x_2$`, `$$...$$`: LaTeX is code
    too: "\\overline{x" and "x_2" were names to the NER)."""
    regions = [(m.start(), m.end()) for m in FENCE_RE.finditer(text)]
    for rx in (INLINE_CODE_RE, MATH_RE):
        for m in rx.finditer(text):
            if not any(s <= m.start() < e for s, e in regions):
                regions.append((m.start(), m.end()))
    return regions


def _inside(d: Detection, regions: list[tuple[int, int]]) -> bool:
    return any(s <= d.start and d.end <= e for s, e in regions)


def _apply_rules(text: str, raw: list[Detection], scrub: ScrubSettings) -> list[Detection]:
    """presidio's raw results -> the detections Forge keeps (before name propagation and the deny list)."""
    allow = {a.casefold() for a in scrub.allow_list}
    regions = code_regions(text) if scrub.skip_code and has_code(text) else []
    kept = []
    for d in raw:
        if d.entity_type in ORG_LOC and d.entity_type not in scrub.entities:
            cue = ORG_CUE_RE if d.entity_type == "ORGANIZATION" else LOC_CUE_RE
            span = text[d.start : d.end]
            if (
                not cue.search(text[max(0, d.start - 12) : d.start])
                or not span[:1].isupper()
                or span.isupper()
                or any(ch.isdigit() for ch in span)
            ):
                continue  # a name is capitalised, not an acronym ("to IBAN ..."), and has no digits
            d = Detection("PERSON", d.start, d.end, scrub.score_threshold)
        elif d.score < scrub.score_threshold:
            continue
        value = text[d.start : d.end].casefold()
        if value in allow or (d.entity_type == "PERSON" and _NAME_STRIP.sub("", value) in NOT_NAMES):
            continue
        if regions and d.entity_type in NER_ENTITIES and _inside(d, regions):
            continue  # names and words inside code are code ("Python", `Person(name)`), not PII
        kept.append(d)
    return kept


_NAME_STRIP = re.compile(r"(?:['’]s|['’])$")
_MONTHS_DAYS = {
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
}
