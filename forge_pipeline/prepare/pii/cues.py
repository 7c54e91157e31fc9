"""Names written in lower case, found by the words around them (the NER reads capitals and misses them).

"told yusuf", "reach ingrid on ...", "rafael thinks", "paid hanne back": a lower-case word that is no English
word (WordNet's index as the spaCy model's lemmatizer carries it, plurals included, and no stop word) right
after a person cue or right before a verb of speech or motion is a name. Strong cues ("told", "texted",
"said") count in any text; the weak ones ("with", "and", "for", "from", "to") only in text written mostly in
lower case (chat, quick journal lines), where the NER has nothing to go on: in capitalised prose "with
numpy" is a library. A word the vault names as a concept (code, titles, tags) is never one
(decision.keep_reason, applied by the caller).
"""

from __future__ import annotations

import re
from functools import lru_cache

from forge_pipeline.prepare.pii.detection import _MONTHS_DAYS, NOT_NAMES, Detection

_T = r"([a-zà-öø-ÿ][a-zà-öø-ÿ-]*[a-zà-öø-ÿ])"
_STRONG_BEFORE = (
    r"told|tell|telling|met|meet|meeting|asked|ask|texted|text|messaged|emailed|pinged|phoned|called|call|"
    r"thanks|thank|dear|hi|hey|hugged|visited|visit|invited|helped|paid|miss|missed|reach|cooked for|"
    r"lunch with|dinner with|coffee with|drinks with|chess with|walk with|call with|chat with|birthday card for|"
    r"letter from|gift for|present for|date with"
)
_WEAK_BEFORE = r"with|w/|and|for|from|to|by|saw|see|love"
_AFTER = (
    r"said|says|say|thinks|thought|called|calls|texted|texts|wrote|writes|asked|asks|told|tells|moved|moves|"
    r"came|comes|went|goes|wants|needs|sent|sends|lent|lends|laughed|cried|replied|mentioned|suggested|"
    r"recommended|loved|hated|left|arrived|visited|phoned|is coming|and i|says hi|got|gave|bought|made|"
    r"finally|still|just|was|is|has|had|will|can|could|would|'s|’s"
)
STRONG_BEFORE_RE = re.compile(r"(?<![\w@/])(?:" + _STRONG_BEFORE + r")\s+" + _T + r"\b")
WEAK_BEFORE_RE = re.compile(r"(?<![\w@/])(?:" + _WEAK_BEFORE + r")\s+" + _T + r"\b")
AFTER_RE = re.compile(r"(?<![\w@/.'’-])" + _T + r"(?=\s*(?:" + _AFTER + r")\b)")
# the after-cues that are ordinary verbs after anything ("it was", "that is"): only a name at a clause start
_WEAK_AFTER = {"finally", "still", "just", "was", "is", "has", "had", "will", "can", "could", "would", "got", "made"}
_CLAUSE_START = re.compile(r"(?:^|[.!?;:\n,(]|\b(?:and|but|so|then|today|yesterday|lol|ok|also)\b)\s*$")


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


def is_english_word(term: str, words: frozenset[str]) -> bool:
    """Every word of `term` is a dictionary word, plural and verb forms included ("filters", "libraries")."""

    def known(w: str) -> bool:
        stems = {w, w.removesuffix("s"), w.removesuffix("es"), w.removesuffix("ed"), w.removesuffix("ing")}
        if w.endswith("ies"):
            stems.add(w[:-3] + "y")
        if w.endswith("ed") or w.endswith("ing"):
            stems.add(w.removesuffix("d"))
            stems.add(w.removesuffix("ing") + "e")
        return any(stem in words for stem in stems)

    return all(known(w) for w in term.split())


def mostly_lower_case(text: str) -> bool:
    """Text written without capitals at sentence starts (chat, quick notes): under 1 capital per 60 letters."""
    letters = sum(c.isalpha() for c in text)
    return letters >= 12 and sum(c.isupper() for c in text) * 60 < letters


def cue_names(text: str, words: frozenset[str]) -> list[Detection]:
    """Lower-case names by the words around them (see the module docstring). Score 0.6: below the NER's."""
    from spacy.lang.en.stop_words import STOP_WORDS

    def is_name(word: str) -> bool:
        w = word.casefold()
        return (
            len(w) >= 3
            and w not in STOP_WORDS
            and w not in NOT_NAMES
            and w not in _MONTHS_DAYS
            and not is_english_word(w.replace("-", " "), words)
        )

    found: dict[tuple[int, int], Detection] = {}
    matches = list(STRONG_BEFORE_RE.finditer(text))
    if mostly_lower_case(text):
        matches += WEAK_BEFORE_RE.finditer(text)
    for m in matches:
        if is_name(m.group(1)):
            found[m.span(1)] = Detection("PERSON", m.start(1), m.end(1), 0.6)
    for m in AFTER_RE.finditer(text):
        verb = text[m.end(1) :].split(None, 1)[0].casefold() if text[m.end(1) :].strip() else ""
        if verb in _WEAK_AFTER and not _CLAUSE_START.search(text[max(0, m.start(1) - 12) : m.start(1)]):
            continue
        if is_name(m.group(1)):
            found[m.span(1)] = Detection("PERSON", m.start(1), m.end(1), 0.6)
    return sorted(found.values(), key=lambda d: d.start)
