"""PII scrubbing with presidio: detection, consistent placeholders, residual check.

Modules: `recognizers` (the AnalyzerEngine and Forge's patterns), `detection` (presidio over texts, cached,
and the per-text rules), `lexicon` (English words, given names), `person_signs` (what says a span is a
person), `cues` (names by the words around them), `decision` (the one name decision), `vault` (people and
concepts), `spans` (union of overlaps, structure a placeholder never crosses), `propagation` (names over the
corpus), `scrub` (the table: placeholders, language gate, report), `residual` (the check).

What is replaced (settings.prepare.scrub; each rule is measured on data/pii_eval_journal, see
data/pii_eval/evaluate.py --ablation):
- presidio's recognizers for the configured entities, with Forge's patterns for street addresses and
  postcodes (US, UK, FR, DE, NL, SE, IT, ES, CA), phone numbers in the national formats of `phone_regions`,
  and a checksum-validated IBAN recognizer.
- Names: spaCy's PERSON spans that show a sign of a person (person_signs.py: a given name from `lexicon`,
  initials, a title, unknown capitalised words, a cue), names the lexicon knows that the NER missed, plus
  ORGANIZATION/LOCATION spans right after a person cue ("coffee with Maren", spaCy often calls a lone first
  name an organisation), `people/<name>` tags, names in frontmatter
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

from forge_pipeline.language import held_back_language
from forge_pipeline.prepare.pii.detection import (
    DENY_ENTITY,
    NER_ENTITIES,
    PLACEHOLDER_RE,
    Detection,
    DetectionCache,
    chunk_text,
    code_regions,
)
from forge_pipeline.prepare.pii.propagation import CorpusDetections, NameIndex, analyze_texts, detect_corpus
from forge_pipeline.prepare.pii.recognizers import build_analyzer, fix_tldextract_offline, iban_spans
from forge_pipeline.prepare.pii.residual import (
    FlaggedValue,
    ResidualReport,
    check_residual_pii,
    find_residual_pii,
    mask_value,
    masked_context,
)
from forge_pipeline.prepare.pii.scrub import (
    REPLACEMENT_DTYPE,
    PlaceholderMap,
    ScrubReport,
    known_names_of,
    language_gate,
    scrub_examples,
)
from forge_pipeline.prepare.pii.spans import merge_spans, trim_names

__all__ = [
    "DENY_ENTITY",
    "NER_ENTITIES",
    "PLACEHOLDER_RE",
    "REPLACEMENT_DTYPE",
    "CorpusDetections",
    "Detection",
    "DetectionCache",
    "FlaggedValue",
    "NameIndex",
    "PlaceholderMap",
    "ResidualReport",
    "ScrubReport",
    "analyze_texts",
    "build_analyzer",
    "check_residual_pii",
    "chunk_text",
    "code_regions",
    "detect_corpus",
    "find_residual_pii",
    "fix_tldextract_offline",
    "held_back_language",
    "iban_spans",
    "known_names_of",
    "language_gate",
    "mask_value",
    "masked_context",
    "merge_spans",
    "scrub_examples",
    "trim_names",
]
