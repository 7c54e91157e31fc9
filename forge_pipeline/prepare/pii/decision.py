"""The one decision on names, shared by the scrub and the residual check: is this value a person to replace?

Built once per dataset (`NameDecision.build`) from what the corpus and the vault say:
- `persons`: names the vault marks as people (people folders, person types and tags, `people/<name>` tags,
  frontmatter person fields, the deny list is separate): replaced everywhere, any letter case, parts alone.
- `concepts`: what the vault names as a thing (titles, headings, link targets, tags, folders, words in code
  and URL hosts; see vault.py): a PERSON value equal to one is kept, with that as its reason.
- `names`: every term replaced wherever it occurs: `persons` plus the NER's names that the corpus supports
  (propagation.py), minus concepts; `common` of them stay words where written in lower case ("filters").
The scrub replaces exactly what `replaces` says; the check flags what is left that `replaces` says must go,
so the check can never fail on a value the scrub kept on purpose: `keep_reason` says why it was kept.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii.detection import _NAME_STRIP, NOT_NAMES
from forge_pipeline.prepare.pii.lexicon import is_english_word
from forge_pipeline.prepare.pii.vault import VaultMarkers, normalise_concept

ORDINARY_MIN_LOWER = 2
_DOTTED = re.compile(r"\.\w")
_LOWER_WORD = re.compile(r"(?<![\w/.@#`-])[a-z]+(?![\w/@`-])")
# "iCloud", "PayPal", "OneNote", "LaTeX", "GitHub", "OpenAI": capitals inside a word name a product
_PRODUCT_CAPS = re.compile(r"^[a-z]+[A-Z]|[a-z][A-Z]|[A-Z]{2,}[a-z]")
_NAME_PREFIX = re.compile(r"^(?:Mc|Mac|O['’]|De|Di|Da|Du|Le|La|Van|Von|Fitz|St)[A-Z][a-z]")
# "Halley's comet", "Murphy's law", "Parkinson's disease", "Occam's razor": a name that names a thing
EPONYM = re.compile(
    r"['’]s\s+(?:comet|laws?|disease|syndrome|razor|theorem|principle|paradox|constant|equation|wager|dilemma"
    r"|conjecture|hypothesis|fallacy|pyramid|hierarchy)\b",
    re.IGNORECASE,
)
# a capitalised word after another ("Green Revolution", "Green Day"): the two are one name of a thing
_NEXT_CAPITALISED = re.compile(r"[ \t]+[A-Z][a-z]")


@dataclass
class NameDecision:
    """Raw names: in memory only, never stored or logged."""

    persons: set[str] = field(default_factory=set, repr=False)  # terms (lower case) the vault marks as people
    person_names: set[str] = field(default_factory=set, repr=False)  # those people's whole names, normalised
    names: set[str] = field(default_factory=set, repr=False)  # terms replaced everywhere (persons included)
    common: set[str] = field(default_factory=set, repr=False)  # names that stay words in lower case
    concepts: dict[str, str] = field(default_factory=dict, repr=False)  # normalised concept -> its source
    allow: set[str] = field(default_factory=set, repr=False)
    ordinary: set[str] = field(default_factory=set, repr=False)  # dictionary words the corpus writes in lower case
    lower_in_prose: set[str] = field(default_factory=set, repr=False)  # non-words capitalising prose writes so
    words: frozenset[str] = field(default_factory=frozenset, repr=False)  # the English dictionary (cues.py)

    @classmethod
    def start(cls, scrub: ScrubSettings, markers: VaultMarkers | None) -> NameDecision:
        concepts = markers.concepts if markers is not None and scrub.vault_concepts else {}
        return cls(concepts=concepts, allow={a.casefold() for a in scrub.allow_list})

    def learn_words(self, texts: list[str], words: frozenset[str]) -> None:
        """`ordinary`: the dictionary words written in lower case at least ORDINARY_MIN_LOWER times in `texts`
        ("browse", "settings", "standard" in a help vault): a span of nothing but such words is no name
        ("Quick Settings", "Browse"). Newton, Locke or Hopper are dictionary words too, but nobody writes
        them in lower case twice."""
        from forge_pipeline.prepare.pii.cues import sentences_start_lower

        lower: Counter[str] = Counter()
        in_prose: Counter[str] = Counter()  # lower-case words of text that capitalises its sentences
        for text in texts:
            if text:
                found = [m for m in _LOWER_WORD.finditer(text) if m.group().islower()]
                lower.update(m.group() for m in found)
                if not sentences_start_lower(text):
                    # not the parts of dotted names: "emma" of emma.williams@example.org is no word of prose
                    in_prose.update(m.group() for m in found if not _DOTTED.match(text, m.end()))
        self.words = words
        self.ordinary = {w for w, n in lower.items() if n >= ORDINARY_MIN_LOWER and w in words}
        # "reverb", "django", "laravel": no dictionary words, yet prose that capitalises names writes them in
        # lower case, so they are things ("Reverb Plugins", "Django Apps"); a journal written in lower case says
        # nothing either way, and a dictionary word ("mark", "will") is a given name too ("Mark Twain")
        self.lower_in_prose = {w for w, n in in_prose.items() if n >= ORDINARY_MIN_LOWER and w not in words}

    def keep_reason(self, value: str, in_concept: bool = False) -> str | None:
        """Why a PERSON value a detector found is not replaced (None: it is). A person the vault marks is
        always replaced; otherwise kept: the allow list, kinship/role words, the vault's concepts (the whole
        value is one), a span of ordinary words (see learn_words), a word that capitalising prose writes in
        lower case ("Reverb Plugins", `lower_in_prose`), words with product-style capitals
        ("iCloud", "PayPal", "LaTeX", "OneNote"), and, inside a concept phrase written in the text
        (`in_concept`: "Drag" in "What are your thoughts on Drag and drop?"), a span of dictionary words."""
        norm = normalise_concept(value)
        parts = norm.split()
        if norm in self.persons:
            return None
        plain = _NAME_STRIP.sub("", value.casefold()).strip()
        if plain in self.allow or norm in self.allow:
            return "allow_list"
        if plain in NOT_NAMES:
            return "kinship or role word"
        if norm in self.concepts:
            return f"vault concept ({self.concepts[norm]})"
        if parts and all(p in self.ordinary for p in parts):
            return "ordinary words"
        if any(p in self.lower_in_prose for p in parts):
            return "written in lower case in prose"
        if any(_PRODUCT_CAPS.search(w) and not _NAME_PREFIX.match(w) for w in value.split()):
            return "product-style capitals"
        if in_concept and parts and all(p in self.words for p in parts):
            return "dictionary words in a vault concept"
        return None

    @cached_property
    def concept_words(self) -> frozenset[str]:
        """The one-word concepts that are no person of the vault ("django", "meta"): no given name there."""
        return frozenset(c for c in self.concepts if " " not in c and c not in self.persons)

    @cached_property
    def concept_heads(self) -> frozenset[str]:
        """First words of the vault's multi-word concepts ("meta" of "meta skill")."""
        return frozenset(c.split()[0] for c in self.concepts if " " in c)

    @cached_property
    def family_names(self) -> frozenset[str]:
        """Words that follow the first word of a person's name the vault marks, and never open one ("green" of
        John Green, not "john")."""
        parts = [name.split() for name in self.person_names]
        firsts = {p[0] for p in parts if p}
        return frozenset(w for p in parts for w in p[1:] if w not in firsts)

    def is_concept_term(self, term: str) -> bool:
        return term not in self.persons and term in self.concepts

    def replaces(self, key: str, text: str, start: int, end: int) -> bool:
        """Whether the occurrence text[start:end] of the known term `key` is replaced."""
        written = text[start:end]
        if EPONYM.match(text, end):
            return False  # "Halley's comet": the thing named after the person, no mention of them
        if key in self.persons:
            # a part of a person's name that is a dictionary word, alone, stays a word in lower case ("green" of
            # John Green, "guy", "frank", "lion"); the whole name, and a person called by that word alone ("Green
            # said"), go
            if " " in key or key in self.person_names or not is_english_word(key, self.words):
                return True
            if written.islower():
                return False
            # a family name that the corpus itself writes in lower case as a word ("green") is that word in
            # capitals too ("EVER(GREEN)") and where it opens another capitalised name ("Green Revolution"); a
            # first name before a capitalised word is a full name ("John Oliver"), and "Wilson" of "Ronald Wilson
            # Reagan" is never written in lower case, so both go
            if key in self.ordinary and key in self.family_names:
                return not (written.isupper() or _NEXT_CAPITALISED.match(text, end))
            return True
        if key not in self.names or key in self.concepts:
            return False
        return not (key in self.common and written.islower())
