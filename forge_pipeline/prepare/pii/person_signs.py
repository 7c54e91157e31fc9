"""Signs that a span names a person, beyond the NER's guess: a given name, initials, a title, unknown capitalised
words (`person_sign`), and "Given Surname" pairs the NER missed (`given_name_pairs`). The word lists are in
lexicon.py; the decision that uses them is in propagation.py (`_keep_signed_names`).
"""

from __future__ import annotations

import re

from forge_pipeline.prepare.pii.lexicon import fold, given_names, is_english_word

_TITLE_BEFORE = re.compile(r"(?<![\w])(?:Dr|Mr|Mrs|Ms|Mx|Prof|Sr|Sra|Herr|Frau|Mme|M)\.?\s+$")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def person_sign(value: str, before: str, english: frozenset[str], after: str = "") -> str | None:
    """What in the value itself, or the words just `before` it, says it names a person (None: nothing, or the
    value follows the head of an institution's name):
    "given name" (its first word), "initials", "title", or "unknown words" (two or more capitalised words,
    none of them an English word: "Dharam Kapila", "Solyta Teng", a surname after a rare given name)."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words = _WORD.findall(value)
    if not words or _ORG_BEFORE.search(before):  # "Grupo de Sistemas Distribuídos", "Institute for Advanced Study"
        return None
    english_at = [is_english_word(w.casefold(), english) for w in words]
    if not any(w.casefold() in STOP_WORDS for w in words[1:]):  # "Bill To" is a form label
        if fold(words[0]) in given_names() and words[0].casefold() not in _PLACE_HEADS:  # "Abu Dhabi"
            if not english_at[0]:
                return "given name"
            # "Michael Naumov" yes; "Safari", "Grace", "Will" alone are words first, and so is the start of a
            # longer run of capitals ("Safari Tech Preview")
            surname = len(words) > 1 and not english_at[1] and _capitalised(words[1])
            if surname and not _MORE_CAPITALS.match(after):
                return "given name"
        # dictionary words the NER took in before the name ("Email Jaroslav")
        head = next((k for k, e in enumerate(english_at) if not e), 0)
        if head and _capitalised(words[head]) and fold(words[head]) in given_names():  # not "Incorrect AMI"
            return "given name"
    initials = _INITIALS_NAME.match(value)
    if initials and _initials_name(initials, english, set(), STOP_WORDS):  # "J. A. Murphy", not "C. Input"
        return "initials"
    if _TITLE_BEFORE.search(before[-8:]):
        return "title"
    if len(words) >= 2 and all(_capitalised(w) and _name_like(w, english) for w in words):
        # not the end of a range of places or institutions ("From MIT to Specola Vaticana")
        return None if _RANGE_BEFORE.search(before) else "unknown words"
    return None


# The head of an institution's name, then its preposition, in the languages of the given-name lists' commonest
# locales: what follows names the institution's subject, not a person.
_ORG_BEFORE = re.compile(
    r"(?i:\b(?:group|grupo|groupe|gruppe|institute|instituto|institut|istituto|university|universidade|universidad|"
    r"université|universität|università|department|departamento|département|dipartimento|laboratory|laboratório|"
    r"laboratorio|laboratoire|center|centre|centro|zentrum|school|escola|escuela|école|faculty|faculdade|facultad|"
    r"faculté|college|ministry|ministério|ministerio|museum|museu|museo|musée|society|sociedade|sociedad|société|"
    r"association|associação|asociación|bank|banco|banque)\s+(?:of|for|de|da|do|dos|das|del|des|du|der|für|di|em|en)"
    r"\s+(?:the\s+)?)$"
)
_RANGE_BEFORE = re.compile(r"(?i:\bfrom)\s+[A-Z][\w.&'’-]*(?:\s+[A-Z][\w.&'’-]*){0,3}\s+(?i:to)\s+$")
_ARTICLE_BEFORE = re.compile(r"(?i:\bthe|\ban?)\s+$")
_INITIALS_NAME = re.compile(r"(?<![\w.])(?:[A-Z]\.[ \t]?){1,3}([A-Z][a-zà-öø-ÿ]{2,})\b")
_COUNTRY_INITIALS = {"U.S.", "U.K.", "E.U.", "U.N.", "U.A.E.", "P.R."}
_ENGLISH_SUFFIXES = ("ity", "ness", "tion", "sion", "ment", "able", "ible", "ing", "ize", "ise", "ism", "ics", "ology")
_MORE_CAPITALS = re.compile(r"[ \t]+[A-Z]")
_PLACE_HEADS = {
    "san",
    "abu",
    "santa",
    "santo",
    "são",
    "los",
    "las",
    "port",
    "fort",
    "mount",
    "lake",
    "saint",
}  # "San Francisco"
_PARTICLES = {"van", "von", "de", "da", "del", "der", "den", "di", "du", "la", "le", "el", "al", "bin", "ibn", "ten"}


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and (len(word) == 1 or word[1:].islower() or "-" in word or "'" in word)


def given_name_pairs(
    text: str, english: frozenset[str], ordinary: set[str], terms: frozenset[str] = frozenset()
) -> list[tuple[int, int]]:
    """(start, end) of names the NER may have missed or called an organisation ("[Steph Ango](...)", "Knut
    Sveidqvist", "Grateful for Tariq today"): a capitalised given name, then on the same line one or two
    capitalised words (particles such as "van", "El" between them allowed), or alone when the given name is no
    English word and not the head of a compound ("Carl-bot"). The surname must be no English word, or,
    after a given name that is no English word itself, at least no word this corpus writes in lower case
    ("Liam Cain" yes; "Will Power", "Grace Period", "Zach Young" in a vault that writes "young": no). A given
    name in `terms` (the vault's concepts: a note on "Django") starts no name ("Django Auth")."""
    from spacy.lang.en.stop_words import STOP_WORDS

    tokens = list(_WORD.finditer(text))
    found, i = [], 0
    while i < len(tokens):
        first = tokens[i].group()
        if not (_capitalised(first) and len(first) > 1 and fold(first) in given_names()) or first.casefold() in terms:
            if _family_name_first(text, tokens, i, english, STOP_WORDS) or _unknown_pair(
                text, tokens, i, english, ordinary, STOP_WORDS
            ):
                found.append((tokens[i].start(), tokens[i + 1].end()))  # "Haitham Mohamed", "Adebayo Okonkwo"
                i += 2
                continue
            i += 1
            continue
        rare_first = first.casefold() not in english and first.casefold() not in STOP_WORDS  # "My", "Ran"
        end, j = tokens[i].end(), i + 1
        while j < len(tokens) and j <= i + 3 and text[end : tokens[j].start()] in (" ", "\t"):
            word = tokens[j].group()
            if word.casefold() in _PARTICLES and j + 1 < len(tokens):
                j += 1
                continue
            plain = word.casefold()
            surname = _capitalised(word) and len(word) > 1 and not word.isupper()
            if not (surname and (not is_english_word(plain, english) or (rare_first and plain not in ordinary))):
                break
            end, j = tokens[j].end(), j + 1
        if end > tokens[i].end():
            found.append((tokens[i].start(), end))
            i = j
            continue
        compound = i + 1 < len(tokens) and text[tokens[i].end() : tokens[i + 1].start()] in ("-", "_")
        article = _ARTICLE_BEFORE.search(text[max(0, tokens[i].start() - 5) : tokens[i].start()])  # "the Hilton"
        place = i > 0 and tokens[i - 1].group().casefold() in _PLACE_HEADS  # "San Diego"
        if rare_first and not compound and not article and not place:
            found.append(tokens[i].span())  # "Grateful for Tariq today": no surname, still a person
        i += 1
    for m in _INITIALS_NAME.finditer(text):  # "J. A. Murphy", "R.C. Waldun"; not "D. The", "U.S. Bonds"
        if _initials_name(m, english, ordinary, STOP_WORDS):  # the surname alone, if found above, gives way
            found = [(s, e) for s, e in found if not (m.start() <= s and e <= m.end())]
            if not any(s < m.end() and m.start() < e for s, e in found):
                found.append(m.span())
    return sorted(found)


def _family_name_first(text: str, tokens, i: int, english: frozenset[str], stop_words) -> bool:
    """Token i is a capitalised word that is no English word and token i+1, after one space, a given name that is
    no English word either: a name whose first part the lexicon lacks ("Haitham Mohamed")."""
    if i + 1 >= len(tokens) or text[tokens[i].end() : tokens[i + 1].start()] != " ":
        return False
    word, given = tokens[i].group(), tokens[i + 1].group()
    return (
        _capitalised(word)
        and len(word) > 2
        and word.casefold() not in _PLACE_HEADS
        and word.casefold() not in stop_words
        and not is_english_word(word.casefold(), english)
        and _capitalised(given)
        and fold(given) in given_names()
        and not is_english_word(given.casefold(), english)
    )


def _unknown_pair(text: str, tokens, i: int, english: frozenset[str], ordinary: set[str], stop_words) -> bool:
    """Tokens i and i+1, one space apart, are both capitalised words of three letters or more that are no English
    word, no stop word and nothing this corpus writes in lower case: a full name whose given name the lexicon
    lacks ("Adebayo Okonkwo", "Priyanka Raghunathan"). Product names mostly hold an English word ("Ubuntu Server",
    "Linux Mint", "Podman Desktop")."""
    if i + 1 >= len(tokens) or text[tokens[i].end() : tokens[i + 1].start()] != " ":
        return False
    return all(
        _capitalised(w)
        and len(w) > 2
        and w.casefold() not in stop_words
        and w.casefold() not in ordinary
        and w.casefold() not in _PLACE_HEADS
        and _name_like(w, english)
        for w in (tokens[i].group(), tokens[i + 1].group())
    )


def _initials_name(m: re.Match, english: frozenset[str], ordinary: set[str], stop_words) -> bool:
    """Initials then a surname: the surname is no stop word, nothing the corpus writes in lower case and, after a
    single initial (often a sentence's last letter: "router R. Destinations"), no English word; the initials
    are no country's ("U.S.", "U.K.")."""
    surname, initials = m.group(1).casefold(), m.group()[: m.start(1) - m.start()].replace(" ", "")
    if surname in stop_words or surname in ordinary or initials in _COUNTRY_INITIALS:
        return False
    return initials.count(".") > 1 or not is_english_word(surname, english)


def _name_like(word: str, english: frozenset[str]) -> bool:
    """No English word, no compound ("Multi-Layer", "Gesture-Based") and no English derivation the dictionary
    lacks ("Interactivity", "Preprocessing", "Generalizable")."""
    plain = word.casefold().removesuffix("'s").removesuffix("’s")  # "Notion's", "Let's"
    return (
        "'" not in plain
        and "’" not in plain
        and "-" not in plain
        and not plain.endswith(_ENGLISH_SUFFIXES)
        and not is_english_word(plain, english)
    )
