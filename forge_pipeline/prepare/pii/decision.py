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

from dataclasses import dataclass, field

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.pii.detection import _NAME_STRIP, NOT_NAMES
from forge_pipeline.prepare.pii.vault import VaultMarkers, normalise_concept


@dataclass
class NameDecision:
    """Raw names: in memory only, never stored or logged."""

    persons: set[str] = field(default_factory=set, repr=False)  # terms (lower case) the vault marks as people
    names: set[str] = field(default_factory=set, repr=False)  # terms replaced everywhere (persons included)
    common: set[str] = field(default_factory=set, repr=False)  # names that stay words in lower case
    concepts: dict[str, str] = field(default_factory=dict, repr=False)  # normalised concept -> its source
    allow: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def start(cls, scrub: ScrubSettings, markers: VaultMarkers | None) -> NameDecision:
        concepts = markers.concepts if markers is not None and scrub.vault_concepts else {}
        return cls(concepts=concepts, allow={a.casefold() for a in scrub.allow_list})

    def keep_reason(self, value: str) -> str | None:
        """Why a PERSON value a detector found is not replaced (None: it is). A person the vault marks is
        always replaced; otherwise the allow list, kinship/role words and the vault's concepts keep a value."""
        norm = normalise_concept(value)
        if norm in self.persons:
            return None
        plain = _NAME_STRIP.sub("", value.casefold()).strip()
        if plain in self.allow or norm in self.allow:
            return "allow_list"
        if plain in NOT_NAMES:
            return "kinship or role word"
        if norm in self.concepts:
            return f"vault concept ({self.concepts[norm]})"
        return None

    def is_concept_term(self, term: str) -> bool:
        return term not in self.persons and term in self.concepts

    def replaces(self, key: str, written: str) -> bool:
        """Whether an occurrence of the known term `key`, written as `written`, is replaced."""
        if key in self.persons:
            return True
        if key not in self.names or key in self.concepts:
            return False
        return not (key in self.common and written.islower())
