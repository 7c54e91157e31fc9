"""Word lists the name decision rests on: English words (is it a dictionary word?) and given names (could it be a
first name?), both from installed packages, read once per process.

Given names: spaCy's small English NER calls "Docker", "Firefox", "Traefik" or "Karnaugh" a PERSON in a
sentence it has no other reading for. Alone, that guess is wrong far more often than right in notes (issue 29:
precision 0.09-0.17 on two public vaults). A real person is nearly always written with something more, and a
given name is the commonest ("Colin Tedford", "Ingrid"). They come from Faker's person providers (MIT): the
first names of its ~80 locales, Latin, Cyrillic, Greek and other scripts, compared without accents ("Siobhán" =
"siobhan"). Faker's own country names are not given names here ("China", "India" are in its lists).
"""

from __future__ import annotations

import importlib
import pkgutil
import unicodedata
from functools import lru_cache
from typing import cast

# Faker's providers keep their data in public class attributes (documented per locale: `first_names`,
# `first_names_female`, `first_romanized_names`, `first_name_pairs` ...); pinned in pyproject
_FIRST_NAME_PREFIX = "first_"  # the methods of the same prefix are skipped (no collections)


def fold(word: str) -> str:
    """Lower case without accents: "Siobhán" -> "siobhan", "Côté" -> "cote"."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words_of(values) -> list[str]:
    if isinstance(values, dict):  # some locales weight their names: {name: frequency}
        values = list(values)
    if not isinstance(values, list | tuple | set | frozenset):  # a few locales compute theirs (a property)
        return []
    words: list[str] = []
    for v in values:  # pairs such as (kanji, kana, romanized) hold several strings
        words += [v] if isinstance(v, str) else [x for x in v if isinstance(x, str)] if isinstance(v, tuple) else []
    return words


@lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    """Every first name in Faker's person providers, folded (~30,000), minus Faker's English country names."""
    import faker.providers.address.en as address_en
    import faker.providers.person as person

    names: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{module.name}").Provider
        for attribute in [a for a in dir(provider) if a.startswith(_FIRST_NAME_PREFIX)]:
            for name in _words_of(getattr(provider, attribute)):
                names.update(fold(part) for part in name.split() if len(part) > 1)
    places = {fold(word) for country in address_en.Provider.countries for word in country.split()}
    # month and weekday abbreviations ("Jun 1913", "Mar", "Sat") are given names somewhere too
    calendar = {
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
    }
    return frozenset(names - places - calendar)


@lru_cache(maxsize=4)
def english_words(spacy_model: str) -> frozenset[str]:
    """The English words of WordNet's index that the spaCy model's lemmatizer carries (~83,000: nouns, verbs,
    adjectives, adverbs), to tell a common word ("filters", "drop") from a name written in lower case
    ("maren", "yusuf"). Some names are words too ("max", "grace"); see _supported for how little rests on it."""
    import spacy
    from spacy.pipeline import Lemmatizer

    # the lemmatizer alone: its lookup tables are all that is read here, no second copy of the NER in memory
    nlp = spacy.load(spacy_model, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "ner", "senter"])
    # get_pipe is typed as any pipe (a Doc -> Doc callable); this one is the Lemmatizer the model ships
    lookups = cast(Lemmatizer, nlp.get_pipe("lemmatizer")).lookups
    index, irregular = lookups.get_table("lemma_index"), lookups.get_table("lemma_exc")
    words = {word for pos in index.keys() for word in index[pos]}
    # irregular forms ("ran", "went", "children") are no entries of the index, only of the exceptions table
    words |= {form for pos in irregular.keys() for form in irregular[pos]}
    return frozenset(words)


def is_english_word(term: str, words: frozenset[str]) -> bool:
    """Every word of `term` is a dictionary word, plural and verb forms included ("filters", "libraries")."""

    def known(w: str) -> bool:
        stems = {w, w.removesuffix("s"), w.removesuffix("es"), w.removesuffix("ed"), w.removesuffix("ing")}
        if w.endswith("ies"):
            stems.add(w[:-3] + "y")
        if w.endswith("ed") or w.endswith("ing"):
            stems.add(w.removesuffix("d"))
            stems.add(w.removesuffix("ing") + "e")
            stem = w.removesuffix("ing").removesuffix("ed")
            if len(stem) > 3 and stem[-1] == stem[-2]:  # "transferring", "stopped"
                stems.add(stem[:-1])
        if any(stem in words for stem in stems):
            return True
        # "reframe", "rethinking", "unlearn", "overthink": a prefix on a word the index has (five letters at
        # least, so that "Renato" or "Reanna" are not "re" + a word)
        prefix = next((p for p in _PREFIXES if w.startswith(p) and len(w) - len(p) >= 5), None)
        return prefix is not None and known(w[len(prefix) :])

    return all(known(w) for w in term.split())


_PREFIXES = ("under", "over", "out", "mis", "pre", "re", "un")
