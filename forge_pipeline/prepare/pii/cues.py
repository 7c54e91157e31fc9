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

from forge_pipeline.prepare.pii.detection import _MONTHS_DAYS, NOT_NAMES, Detection
from forge_pipeline.prepare.pii.lexicon import fold, given_names, is_english_word

_LOWER = r"[a-zà-öø-ÿ]"
_T = r"([^\W\d_][^\W\d_]*(?:-[^\W\d_]+)*)"  # a word of letters, any case (its case is judged after)
_STRONG_BEFORE_WORDS = (
    "told tell telling met meet meeting asked ask texted text messaged email emailed pinged phoned called call "
    "contact thanks thank dear hi hey hugged visited visit invited helped paid miss missed reach picked "
    "lent"
).split()
_STRONG_BEFORE_PHRASES = [
    *(
        f"{w} {with_}"
        for with_ in ("with", "w/")
        for w in "lunch dinner breakfast brunch coffee drinks tea chess walk walked call chat talk talked trip "
        "stayed argued played hike run movie date meeting catch-up session sync pairing went came".split()
    ),
    *(f"{w} to" for w in "talked spoke apologise apologize wrote".split()),
    *(f"{w} from" for w in "letter card message borrowed heard".split()),
    *(f"{w} for" for w in "ask asked cooked gift present card".split()),
    *(f"{w} into" for w in "ran bumped".split()),
    *(
        f"{w} and"
        for w in "mum mom dad sister brother wife husband partner friend colleague son daughter cousin "
        "neighbour neighbor".split()
    ),
    "birthday card for",
]
# longest first: "call with" must win over "call" (a regex alternation takes the first that fits)
_STRONG_BEFORE = "|".join(sorted({*_STRONG_BEFORE_WORDS, *_STRONG_BEFORE_PHRASES}, key=len, reverse=True))
_WEAK_BEFORE = r"with|w/|and|for|from|to|by|saw|see|love"
_STRONG_AFTER = (
    r"said|says|thinks|thought|called|calls|texted|texts|wrote|asked|asks|told|tells|moved|lent|lends|laughed|"
    r"cried|replied|mentioned|suggested|recommended|is coming|and i|says hi|came over|dropped by|"
    r"is moving|is pregnant|has a new|got engaged|got married|'s birthday|’s birthday|'s place|’s place|"
    r"'s house|’s house|'s flat|’s flat|'s (?:new )?(?:number|phone|mobile|work line|email|address)|"
    r"’s (?:new )?(?:number|phone|mobile|work line|email|address)"
)
_WEAK_AFTER = r"came|comes|went|goes|wants|needs|sent|sends|loved|hated|left|arrived|visited|phoned|got|gave|" + (
    r"bought|made|finally|still|just|was|is|has|had|will|can|could|would|'s|’s"
)
STRONG_BEFORE_RE = re.compile(r"(?<![\w@/])(?i:" + _STRONG_BEFORE + r")\s+" + _T + r"\b")
WEAK_BEFORE_RE = re.compile(r"(?<![\w@/])(?i:" + _WEAK_BEFORE + r")\s+" + _T + r"\b")
# the cue is a word of its own ("equivalent" is not "equiva" + "lent"); a possessive is written on the name
STRONG_AFTER_RE = re.compile(r"(?<![\w@/.'’-])" + _T + r"(?=(?:\s+|(?=['’]))(?i:" + _STRONG_AFTER + r")\b)")
WEAK_AFTER_RE = re.compile(r"(?<![\w@/.'’-])" + _T + r"(?=(?:\s+|(?=['’]))(?i:" + _WEAK_AFTER + r")\b)")
PHONE_AFTER_RE = re.compile(r"(?<![\w@/.'’-])" + _T + r"(?=\s+[-–:]\s+\+?\(?\d)")  # "thiago - +31 20 ..."
# the same cues judged at a capitalised span the NER found (cue_around), less those that also name a thing in
# prose: "a business called CATI Jr", "went with Ubuntu Server", "thanks Obsidian", "visit Firefox's page"
_NAMES_THINGS_TOO = {
    "called",
    "call",
    "went with",
    "came with",
    "contact",
    "reach",
    "visit",
    "visited",
    "thanks",
    "thank",
}
_STRONG_BEFORE_SPAN = "|".join(
    sorted({*_STRONG_BEFORE_WORDS, *_STRONG_BEFORE_PHRASES} - _NAMES_THINGS_TOO, key=len, reverse=True)
)
STRONG_CUE_BEFORE_RE = re.compile(r"(?<![\w@/])(?i:" + _STRONG_BEFORE_SPAN + r")\s+$")
WEAK_CUE_BEFORE_RE = re.compile(r"(?<![\w@/])(?i:" + _WEAK_BEFORE + r")\s+$")
STRONG_CUE_AFTER_RE = re.compile(r"(?:\s+|(?=['’]))(?i:" + _STRONG_AFTER + r")\b")
_LOWER_WORD_RE = re.compile(r"(?<![\w@/.#`'’-])[a-zà-öø-ÿ]{3,}(?![\w@/`-])")
LIST_AFTER_RE = re.compile(r"\s*(?:,|&|\band\b)\s*" + _T + r"\b")  # "Björn Mensah and Stanislav"
# the weak after-cues are ordinary verbs after anything ("it was", "that is"): only a name at a clause start
_CLAUSE_START = re.compile(r"(?:^|[.!?;:\n,(]|\b(?:and|but|so|then|today|yesterday|lol|ok|also)\b)\s*$")
# "## Attendees" and the list under it: each item is a person
_PEOPLE_HEADING = re.compile(
    r"^#{1,6}\s*(?:attendees|participants|people|present|guests|with|who)\b[^\n]*\n((?:[ \t]*[-*+][^\n]*\n?)+)",
    re.IGNORECASE | re.MULTILINE,
)
_ITEM = re.compile(r"^[ \t]*[-*+][ \t]+(?:\[\[)?([^\n\]|]+?)(?:\]\])?[ \t]*$", re.MULTILINE)


def mostly_lower_case(text: str) -> bool:
    """Text written without capitals at sentence starts (chat, quick notes): under 1 capital per 60 letters."""
    letters = sum(c.isalpha() for c in text)
    return letters >= 12 and sum(c.isupper() for c in text) * 60 < letters


_SENTENCE_OPENING = re.compile(r"(?:^|[.!?]\s+|\n\s*(?:[-*+]\s+)?)([^\W\d_])", re.MULTILINE)


def sentences_start_lower(text: str) -> bool:
    """Most sentences and lines open in lower case ("ok so siobhán made me laugh. told yusuf"): the writer
    does not capitalise, so a capital says nothing and a lower-case name is as likely as any. Prose with few
    capitals overall still opens its sentences with one ("... and vice versa. In general, ...")."""
    openings = [m.group(1) for m in _SENTENCE_OPENING.finditer(text)]
    return bool(openings) and sum(c.islower() for c in openings) * 3 >= len(openings) * 2


def cue_names(text: str, words: frozenset[str], people: list[tuple[int, int]] | None = None) -> list[Detection]:
    """Names by the words around them (see the module docstring), in any case: a lower-case word that is no
    English word after any cue (in prose that capitalises its sentences, only a known given name: lexicon.py),
    and in text written in lower case any known given name that is no English word ("nadia disagreed"); a capitalised one only after a strong cue, before a strong verb ("Siobhán
    thinks"), before a phone number, as the next item of a list of names that `people` (spans already found)
    starts ("Björn Mensah and Stanislav"), or as an item under an "Attendees" heading. Score 0.6."""
    from spacy.lang.en.stop_words import STOP_WORDS

    def is_name(word: str, lower_only: bool = False) -> bool:
        w = word.casefold()
        if lower_only and not word.islower():
            return False
        if not (word.islower() or (word[:1].isupper() and word[1:].islower())):
            return False  # "iPhone", "API": not written like a name
        return (
            len(w) >= 3
            and w not in STOP_WORDS
            and w not in NOT_NAMES
            and w not in _MONTHS_DAYS
            and not is_english_word(w.replace("-", " "), words)
        )

    found: dict[tuple[int, int], Detection] = {}
    # written in lower case: few capitals and sentences that open without one (quotes and technical prose have
    # few capitals too, but open their sentences with one: "induced by rebalancing" is no name there)
    lower_text = mostly_lower_case(text) and sentences_start_lower(text)

    def add(start: int, end: int) -> None:
        word = text[start:end]
        if text[end : end + 2] in ("'t", "’t"):
            return  # "doesn't": the dictionary has "does", not its stem "doesn"
        if "-" in word and any(
            p.casefold() in STOP_WORDS or is_english_word(p.casefold(), words) for p in word.split("-")
        ):
            return  # "plugin-added", "in-app"
        # in prose that capitalises, a lower-case word is rarely a name the writer meant: only a known given name
        # ("seen", "offline", "birthtime" are no dictionary words but no names either)
        if word.islower() and not lower_text and fold(word) not in given_names():
            return
        found[(start, end)] = Detection("PERSON", start, end, 0.6)

    if lower_text:  # "nadia disagreed": in text written in lower case, a known given name that is no English word
        for m in _LOWER_WORD_RE.finditer(text):
            if fold(m.group()) in given_names() and is_name(m.group(), lower_only=True):
                add(*m.span())
    for m in STRONG_BEFORE_RE.finditer(text):
        if is_name(m.group(1)):
            add(*m.span(1))
    for m in STRONG_AFTER_RE.finditer(text):
        if is_name(m.group(1)):
            add(*m.span(1))
    for m in PHONE_AFTER_RE.finditer(text):
        if is_name(m.group(1)):
            add(*m.span(1))
    if lower_text:
        for m in WEAK_BEFORE_RE.finditer(text):
            if is_name(m.group(1), lower_only=True):
                add(*m.span(1))
    for m in WEAK_AFTER_RE.finditer(text):
        possessive = text[m.end(1) : m.end(1) + 2] in ("'s", "’s")  # "return priyanka's drill"
        start_of_clause = _CLAUSE_START.search(text[max(0, m.start(1) - 12) : m.start(1)])
        if is_name(m.group(1), lower_only=True) and (start_of_clause or (possessive and lower_text)):
            add(*m.span(1))
    for block in _PEOPLE_HEADING.finditer(text):
        for item in _ITEM.finditer(text, block.start(1), block.end(1)):
            value = item.group(1).strip()
            if 0 < len(value.split()) <= 4 and any(is_name(w) for w in re.findall(r"[^\W\d_]+", value)):
                add(item.start(1), item.start(1) + len(value))
    for _ in range(3):  # a list of names: "with Björn Mensah, Ilse and Stanislav"
        ends = sorted({e for _, e in [*(people or []), *found]})
        for end in ends:
            listed = LIST_AFTER_RE.match(text, end)
            if listed and is_name(listed.group(1)) and listed.span(1) not in found:
                add(*listed.span(1))
    return sorted(found.values(), key=lambda d: d.start)


def cue_around(text: str, start: int, end: int) -> bool:
    """A person cue right before or after text[start:end] ("lunch with Thiago", "Siobhán thinks"); the weak
    cues ("with", "and", "for") only for a lower-case word in text written mostly in lower case, as in
    cue_names."""
    before = text[max(0, start - 24) : start]
    if STRONG_CUE_BEFORE_RE.search(before) or STRONG_CUE_AFTER_RE.match(text, end):
        return True
    lower = text[start:end].islower() and mostly_lower_case(text) and sentences_start_lower(text)
    return lower and bool(WEAK_CUE_BEFORE_RE.search(before))
