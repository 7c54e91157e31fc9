"""Name propagation over a whole dataset: a name found anywhere is replaced everywhere it is supported."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii.cues import cue_around, cue_names
from forge_pipeline.prepare.pii.decision import EPONYM, NameDecision
from forge_pipeline.prepare.pii.detection import (
    _MONTHS_DAYS,
    _NAME_STRIP,
    DENY_ENTITY,
    LOC_CUE_RE,
    NER_ENTITIES,
    NOT_NAMES,
    Detection,
    DetectionCache,
    _analyze_raw,
    _apply_rules,
    _inside,
    code_regions,
    has_code,
)
from forge_pipeline.prepare.pii.lexicon import english_words, fold, given_names
from forge_pipeline.prepare.pii.lexicon import is_english_word as _is_english_word
from forge_pipeline.prepare.pii.lists import MIN_PEOPLE, list_sibling_names
from forge_pipeline.prepare.pii.person_signs import given_name_pairs, person_sign
from forge_pipeline.prepare.pii.spans import fit_to_structure, merge_spans, trim_names, url_regions
from forge_pipeline.prepare.pii.vault import VaultMarkers, normalise_concept, text_concepts

# A name found by the NER is propagated when the NER found it in at least this share of the places where it
# is written in a way that NER could judge (capitalised, or in lower case inside otherwise capitalised text);
# product and place names spaCy mislabels now and then ("Chrome", "Postgres") stay below it.
PROPAGATION_MIN_SHARE = 0.3


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
_AFTER_INITIAL = re.compile(r"\.[\s_-]*")  # "Jared A. Nielsen", "J.R.R. Tolkien"


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
                    _NAME_SEPARATOR.fullmatch(text[x[1] : y[0]])
                    or (len(x[2]) == 1 and _AFTER_INITIAL.fullmatch(text[x[1] : y[0]]))
                    for x, y in pairwise(window)
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
            if EPONYM.match(text, end):
                continue  # "Halley's comet" names the comet: no evidence either way
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
    distinct name terms propagated (the terms themselves are PII and are not kept). `own` are each text's
    detections before propagation (what presidio and the per-text rules found in that text alone, after the
    decision); `decision` is the name decision the scrub applied (in memory only: it holds names)."""

    texts: list[list[Detection]]
    tags: list[list[list[Detection]]]
    extras: list[list[Detection]]
    names: int = 0
    name_terms: set[str] = field(default_factory=set, repr=False)  # in memory only: they are names
    own: list[list[Detection]] = field(default_factory=list, repr=False)
    kept: Counter = field(default_factory=Counter)  # PERSON spans the decision kept, per reason (no values)
    decision: NameDecision = field(default_factory=NameDecision, repr=False)


def raw_detections(analyzer, texts: list[str], scrub: ScrubSettings, fast: bool, cache: DetectionCache | None):
    """presidio's results per text, from the cache where it has them (then only new texts are analyzed)."""
    if cache is None:
        return _analyze_raw(analyzer, texts, scrub, fast)
    keys = [cache.key(t) for t in texts]
    todo = list(dict.fromkeys(k for k in keys if k not in cache.entries))
    first = dict(zip(keys, texts))
    for k, dets in zip(todo, _analyze_raw(analyzer, [first[k] for k in todo], scrub, fast)):
        cache.entries[k] = [(d.entity_type, d.start, d.end, d.score) for d in dets]
    cache.added += len(todo)
    cache.save()
    return [[Detection(*e) for e in cache.entries[k]] for k in keys]


def per_text_detections(text: str, raw: list[Detection], scrub: ScrubSettings) -> list[Detection]:
    """One text's detections from presidio's raw results by Forge's per-text rules, before the decision."""
    if not text:
        return []
    dets = fit_to_structure(text, _apply_rules(text, raw, scrub))
    return merge_spans(trim_names(text, dets)) if dets else dets


def _uncued_word_at_sentence_start(text: str, d: Detection, words: frozenset[str]) -> bool:
    """ "Lunch", "Catching", "Email" opening a sentence: the NER calls a capitalised dictionary word there a person
    when nothing around it says so. One word only, no person cue before or after it."""
    value = text[d.start : d.end]
    if " " in value or not value[:1].isupper() or value.casefold() not in words:
        return False
    if not (d.start == 0 or _SENTENCE_START.search(text[max(0, d.start - 4) : d.start])):
        return False
    return not (LOC_CUE_RE.search(text[max(0, d.start - 12) : d.start]) or _AFTER_NAME.match(text, d.end))


_NEXT_NAME = re.compile(r"[ \t]+([A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+(?:['’-][A-Za-zà-öø-ÿ]+)?)\b")


def _names_a_person(value: str, english: frozenset[str]) -> bool:
    """A person field's value names a person unless every word of it is a dictionary or stop word and none is a
    given name: a Creator or Author field also holds channels and publishers ("Sixty Symbols", "Folding Ideas",
    "This American Life", "Republican Party"), whose words would otherwise be replaced everywhere; "Bill Gates",
    "Anil Seth" and "olu" are people."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words = _TOKEN_RE.findall(value)
    ordinary = all(w.casefold() in STOP_WORDS or _is_english_word(w.casefold(), english) for w in words)
    return bool(words) and not (ordinary and not any(fold(w) in given_names() for w in words))


def _with_surnames(text: str, dets: list[Detection], decision: NameDecision) -> list[Detection]:
    """A first name the NER found alone before a capitalised word that is no English word and no concept
    takes that word in ("[Colin Tedford](...)": the NER saw only "Colin"; the surname is the identifying part)."""
    out = []
    for d in dets:
        if d.entity_type == "PERSON" and " " not in text[d.start : d.end]:
            m = _NEXT_NAME.match(text, d.end)
            word = m.group(1).casefold() if m else ""
            if m and word not in decision.words and not decision.is_concept_term(word) and len(word) >= 2:
                d = Detection("PERSON", d.start, m.end(1), d.score)
        out.append(d)
    return out


_CONTACT = {"EMAIL_ADDRESS", "PHONE_NUMBER"}


def _signed_by_itself(value: str, text: str, d: Detection, decision: NameDecision) -> bool:
    """person_sign, except that a given name which opens the vault's concept phrases is no sign by itself
    ("Meta" of the note "Meta skill" in "Meta skills are ...", "Siri" of "Siri integration")."""
    sign = person_sign(value, text[max(0, d.start - 40) : d.start], decision.words, text[d.end : d.end + 3])
    if sign == "given name" and normalise_concept(value).split()[0] in decision.concept_heads:
        return False
    return sign is not None


def _keep_signed_names(texts, text_dets, cue_added, decision: NameDecision, kept_reasons: Counter) -> None:
    """Drops, in place, the PERSON spans with no sign of a person anywhere in the corpus (person_signs.py):
    a value is kept when, at any of its places, its first word is a given name, it has initials, a title or two
    unknown capitalised words, a cue surrounds it (cues.cue_around), a cue found it, or an e-mail address or phone
    number follows it ("Email Zofia at ...", "Contact Oluwaseun 07573 ..."); and always when the
    vault marks it as a person. "Firefox" or "Traefik" written once in prose is a product to the reader."""
    signed: set[str] = set()
    for i, (t, dets) in enumerate(zip(texts, text_dets)):
        for d in dets:
            if d.entity_type != "PERSON":
                continue
            value = t[d.start : d.end]
            norm = normalise_concept(value)
            if norm in signed or (t[d.end : d.end + 1] == "-" and t[d.end + 1 : d.end + 2].isalpha()):
                continue  # known, or the head of a compound ("Carl-bot", "Safari-based")
            if (
                norm in decision.persons
                or ((i, d.start, d.end) in cue_added and value.islower())  # a capitalised one is judged below
                or _signed_by_itself(value, t, d, decision)
                or cue_around(t, d.start, d.end)
                or any(v.entity_type in _CONTACT and 0 <= v.start - d.end <= 5 for v in dets)  # "Zofia at z@x.fr"
            ):
                signed.add(norm)
    for i, (t, dets) in enumerate(zip(texts, text_dets)):
        kept = [d for d in dets if d.entity_type != "PERSON" or normalise_concept(t[d.start : d.end]) in signed]
        if len(kept) < len(dets):
            kept_reasons["no sign of a person"] += len(dets) - len(kept)
            text_dets[i] = kept


def _with_given_name_pairs(
    text: str, dets: list[Detection], decision: NameDecision, regions: list[tuple[int, int]], phrases: NameIndex
):
    """`dets` plus the names of person_signs.given_name_pairs that no PERSON span covers yet (an ORG or LOC
    span over them gives way), outside code and URLs, cut to the Markdown structure. A given name alone that
    opens one of the vault's concept phrases is the start of a term ("Meta skill", "Siri integration").
    `regions`: the text's code and URL spans."""
    opens_term = {s for s, _, words in phrases.find(text) if len(words) > 1}
    people = [d for d in dets if d.entity_type == "PERSON"]
    values = [d for d in dets if d.entity_type not in NER_ENTITIES]  # an address or phone keeps its own type
    pairs = [
        Detection("PERSON", start, end, 0.7)
        for start, end in given_name_pairs(text, decision.words, decision.ordinary, decision.concept_words)
        # a PERSON span inside the pair ("Liam" of "Liam Cain") gives way to it; one that overlaps it otherwise wins
        if not any(p.start < end and start < p.end and not (start <= p.start and p.end <= end) for p in people)
        and not any(v.start < end and start < v.end for v in values)
        and not (start in opens_term and " " not in text[start:end])
        and not decision.is_concept_term(normalise_concept(text[start:end]))
    ]
    pairs = [d for d in fit_to_structure(text, pairs) if not (regions and _inside(d, regions))]
    if not pairs:
        return dets
    rest = [
        d
        for d in dets
        if d.entity_type not in NER_ENTITIES or not any(p.start < d.end and d.start < p.end for p in pairs)
    ]
    return sorted([*rest, *pairs], key=lambda d: d.start)


def _with_list_siblings(
    text: str, dets: list[Detection], decision: NameDecision, regions: list[tuple[int, int]]
) -> list[Detection]:
    """`dets` plus the names at the same place as the persons of a list of people (lists.py), where nothing is
    found yet, outside code and URLs, and not one of the vault's concepts."""
    people = [(d.start, d.end) for d in dets if d.entity_type == "PERSON"]
    if len(people) < MIN_PEOPLE:
        return dets
    extra = [
        Detection("PERSON", start, end, 0.6)
        for start, end in list_sibling_names(text, people)
        if not any(d.start < end and start < d.end for d in dets)
        and not decision.is_concept_term(normalise_concept(text[start:end]))
    ]
    extra = [d for d in extra if not (regions and _inside(d, regions))]
    return sorted([*dets, *extra], key=lambda d: d.start) if extra else dets


def concept_phrases(decision: NameDecision) -> NameIndex:
    """The vault's concepts of two to eight words as a phrase index (titles, headings, link targets)."""
    return NameIndex({c for c in decision.concepts if 1 < len(c.split()) <= 8})


def _with_cue_names(text: str, dets: list[Detection], words, scrub: ScrubSettings) -> list[Detection]:
    """`dets` plus the lower-case names cues.py finds, where no detection already covers them and not in code
    or a URL."""
    regions = code_regions(text) if scrub.skip_code and has_code(text) else []
    extra = [
        d
        for d in fit_to_structure(
            text, cue_names(text, words, [(d.start, d.end) for d in dets if d.entity_type == "PERSON"])
        )
        if not any(o.start < d.end and d.start < o.end for o in dets) and not (regions and _inside(d, regions))
    ]
    return sorted([*dets, *extra], key=lambda d: d.start) if extra else dets


def mentions(text: str, value: str, regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Where `value` is written in `text` as a whole word, outside `regions` (code, URLs), except where it names
    a thing after a person ("Halley's comet"): the places the scrub replaces a value the NER called a person in
    the text, and so the places the residual check looks for it."""
    return [
        (m.start(), m.end())
        for m in re.finditer(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text)
        if not _inside(Detection("PERSON", m.start(), m.end(), 1.0), regions) and not EPONYM.match(text, m.end())
    ]


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
    markers: VaultMarkers | None = None,
) -> CorpusDetections:
    """Detections over a whole dataset at once.

    1. presidio over every text (batched spaCy; cached per text), then Forge's rules: the score threshold,
       ORG/LOC spans after a person cue counted as names, names inside code dropped (structured values kept),
       spans cut to the Markdown structure (spans.fit_to_structure).
    2. The name decision (decision.py): the vault's concepts (`markers`, plus words in code in
       these texts) are not names unless the vault marks them as people; a PERSON the NER found that is
       a concept is dropped.
    3. Name propagation (scrub.propagate_names): every name found in step 1, every `people/<name>` tag, every
       `known_names` entry (names from frontmatter person fields, see scrub.person_frontmatter_fields), every
       person the vault marks and every deny-list term is replaced everywhere: in all texts (outside code)
       and tags, in any letter case, the full name and each part of it ("olu", "maren", "Novák").
    4. Deny-list terms, then overlapping spans merged to their union.
    `tags[i]` are the tags of text i; `extras` are strings (source paths, file names) where only the names
    the vault marks as people and deny-list terms are replaced, never names the NER guessed.
    """
    tags = tags if tags is not None else [[] for _ in texts]
    extras = extras or []
    raw = raw_detections(analyzer, texts, scrub, fast, cache)
    # code and URLs of each text: no name is found there by the lexicon, and none propagated into them
    regions_of = [
        [*(code_regions(t) if scrub.skip_code and has_code(t) else []), *url_regions(t)] if t else [] for t in texts
    ]
    text_dets = [per_text_detections(t, r, scrub) for t, r in zip(texts, raw)]
    markers = markers if markers is not None else VaultMarkers()
    if scrub.vault_concepts:
        text_concepts(texts, markers, code_regions)
    decision = NameDecision.start(scrub, markers)
    kept_reasons: Counter[str] = Counter()
    tag_dets: list[list[list[Detection]]] = [[[] for _ in row] for row in tags]
    sure: set[str] = set()  # names from people/ tags, known_names, the vault's people: propagated as they are
    candidates: set[str] = set()  # names the NER found: propagated when the corpus supports them
    if "PERSON" in scrub.entities:
        english = english_words(scrub.spacy_model)
        named = [n for n in known_names or [] if _names_a_person(n, english)]
        if len(named) < len(known_names or []):
            kept_reasons["person field of dictionary words, no given name"] += len(known_names or []) - len(named)
        for name in [*named, *markers.persons]:
            sure |= _name_terms(name, scrub)
            decision.person_names.add(normalise_concept(name))
        prefixes = tuple(p.casefold() for p in scrub.person_tag_prefixes)
        for i, row in enumerate(tags):
            for j, tag in enumerate(row):
                prefix = next((p for p in prefixes if tag.casefold().startswith(p) and len(tag) > len(p)), None)
                if prefix is not None:
                    tag_dets[i][j].append(Detection("PERSON", len(prefix), len(tag), 1.0))
                    tagged = tag[len(prefix) :].replace("-", " ").replace("_", " ")
                    sure |= _name_terms(tagged, scrub)
                    decision.person_names.add(normalise_concept(tagged))
        decision.persons = set(sure)
        cue_added: set[tuple[int, int, int]] = set()  # (text, start, end) of names a cue found (cues.py)
        if scrub.lowercase_names:
            for i, t in enumerate(texts):
                if t and any(c.islower() for c in t):
                    before = {(d.start, d.end) for d in text_dets[i]}
                    text_dets[i] = _with_cue_names(t, text_dets[i], english, scrub)
                    cue_added |= {(i, d.start, d.end) for d in text_dets[i] if (d.start, d.end) not in before}
        # corpus evidence about words, like name propagation: only when the corpus may speak for a text
        decision.learn_words(texts if scrub.propagate_names else [], english)
        phrases = concept_phrases(decision)
        for i, t in enumerate(texts):
            if t and scrub.name_evidence:
                text_dets[i] = _with_given_name_pairs(t, text_dets[i], decision, regions_of[i], phrases)
            text_dets[i] = _with_surnames(t, text_dets[i], decision)
        for i, (t, dets) in enumerate(zip(texts, text_dets)):
            kept = []
            spans = phrases.find(t) if phrases.terms and any(d.entity_type == "PERSON" for d in dets) else []
            for d in dets:
                if d.entity_type != "PERSON":
                    kept.append(d)
                    continue
                inside = any(s <= d.start and d.end <= e and (s, e) != (d.start, d.end) for s, e, _ in spans)
                reason = decision.keep_reason(t[d.start : d.end], inside)
                if reason is None and EPONYM.match(t, d.end):
                    reason = "eponym"  # "Halley's comet"
                if reason is None and _uncued_word_at_sentence_start(t, d, decision.words):
                    reason = "dictionary word at a sentence start"
                if reason is None and any(d.start <= s < d.end < e for s, e, _ in spans):
                    reason = "runs into a vault concept"  # "Meta" of "Meta skill", "Explain Meta" of "Meta variables"
                if reason is None:
                    kept.append(d)
                else:
                    kept_reasons[reason] += 1
            text_dets[i] = kept
        if scrub.name_evidence:
            _keep_signed_names(texts, text_dets, cue_added, decision, kept_reasons)
            for i, t in enumerate(texts):
                if t and "\n" in t:
                    text_dets[i] = _with_list_siblings(t, text_dets[i], decision, regions_of[i])
        if scrub.propagate_names:
            for t, dets in zip(texts, text_dets):
                candidates |= {
                    term for d in dets if d.entity_type == "PERSON" for term in _name_terms(t[d.start : d.end], scrub)
                }
    own = [list(d) for d in text_dets]
    deny_terms = {" ".join(d.split()).casefold() for d in scrub.deny_list if d.strip()}
    sure -= deny_terms
    decision.persons -= deny_terms
    candidates -= deny_terms | sure
    candidates = {c for c in candidates if not decision.is_concept_term(c)}
    index = NameIndex(sure | candidates if scrub.propagate_names else sure)
    occurrences = [index.find(t) if t else [] for t in texts]
    terms = set(sure)
    if candidates:
        supported, weak_lower = _supported(texts, text_dets, regions_of, occurrences, candidates)
        terms |= supported
        # a lower-case name with weak evidence stays a name ("maren", "yusuf" are no words), a dictionary
        # word stays a word in lower case ("drag and drop", "filters"); its capitalised places are still names
        if weak_lower:
            words = english_words(scrub.spacy_model)
            decision.common = {t for t in weak_lower if _is_english_word(t, words)}
    decision.names = terms
    deny = NameIndex(deny_terms)
    persons_only = NameIndex(decision.persons)

    def propagate(text, dets, regions, found=None, index=index) -> list[Detection]:
        out = list(dets)
        # a value the NER called a person in this text is gone from all of this text, as written
        for value in {text[d.start : d.end] for d in dets if d.entity_type == "PERSON"}:
            out.extend(Detection("PERSON", start, end, 1.0) for start, end in mentions(text, value, regions))
        for start, end, term in found if found is not None else index.find(text):
            d = Detection("PERSON", start, end, 1.0)
            if decision.replaces(" ".join(term), text, start, end) and not (regions and _inside(d, regions)):
                out.append(d)
        out.extend(Detection(DENY_ENTITY, start, end, 1.0) for start, end, _ in deny.find(text))
        return merge_spans(trim_names(text, out))

    for i, t in enumerate(texts):
        if t:
            text_dets[i] = propagate(t, text_dets[i], regions_of[i], occurrences[i])
    for i, row in enumerate(tags):
        for j, tag in enumerate(row):
            tag_dets[i][j] = propagate(tag, tag_dets[i][j], [])
    extra_dets = [propagate(e, [], [], index=persons_only) if e else [] for e in extras]
    return CorpusDetections(
        text_dets, tag_dets, extra_dets, len(terms), terms | deny_terms, own=own, decision=decision, kept=kept_reasons
    )


def analyze_texts(
    analyzer, texts: list[str], scrub: ScrubSettings, *, fast: bool = True, cache: DetectionCache | None = None
) -> list[list[Detection]]:
    """Detections per text (detect_corpus over `texts` alone, no tags).

    fast=True: presidio's batch NLP path (one spaCy pass over all texts); fast=False: presidio's plain
    one-document-at-a-time `analyze` loop (the reference the benchmark compares against). With a cache, only
    texts not analyzed before (same settings) go through presidio.
    """
    return detect_corpus(analyzer, texts, None, scrub, fast=fast, cache=cache).texts
