"""The review step: what the scrub would replace and what the residual check would flag, before anything is
trained, for `forge check-inputs` and `forge pii review` (Dagster-free; the decisions are in pii_decisions)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import polars as pl

from forge_pipeline.prepare.pii import FlaggedValue
from forge_pipeline.prepare.pii_display import describe, mask


@dataclass
class ReviewCandidates:
    """What the current settings (reviewed decisions included) do to a table of training examples."""

    replaced: list[FlaggedValue] = field(default_factory=list)  # values the scrub replaces
    residual: list[FlaggedValue] = field(default_factory=list)  # values no_residual_pii would flag
    examples: int = 0
    examples_changed: int = 0

    def ordered(self) -> list[tuple[str, FlaggedValue]]:
        """Flagged values first (they block the chain), then the replaced ones, most frequent first."""
        by_count = lambda flags: sorted(flags, key=lambda f: (-f.count, f.value.casefold()))  # noqa: E731
        return [("flagged", f) for f in by_count(self.residual)] + [("replaced", f) for f in by_count(self.replaced)]


def value_id(value: str) -> str:
    """A short handle for a value in a listing (`--accept 3fa2c1`), so a person need not retype it."""
    return hashlib.sha256(" ".join(value.split()).casefold().encode("utf-8")).hexdigest()[:6]


def review_candidates(
    training: pl.DataFrame, settings, analyzer=None, cache_dir=None, notes: pl.DataFrame | None = None
) -> ReviewCandidates:
    """Scrub `training` (training_examples' table) with `settings` as the pipeline would, in memory only, and
    collect what was replaced and what the residual check flags afterwards. `notes` (vault_notes' table) says
    what the vault marks as people and concepts, as in the pipeline."""
    from forge_pipeline.prepare.pii import build_analyzer, scrub_examples
    from forge_pipeline.prepare.pii_flags import replaced_values, residual_values

    scrub = settings.prepare.scrub
    analyzer = analyzer or build_analyzer(scrub.spacy_model, scrub)
    scrubbed, report = scrub_examples(
        training, scrub, analyzer, cache_dir=cache_dir, languages=settings.prepare.filter.languages, notes=notes
    )
    return ReviewCandidates(
        replaced=replaced_values(training, scrubbed),
        residual=residual_values(scrubbed, scrub, analyzer, original=training, cache_dir=cache_dir, notes=notes),
        examples=report.examples,
        examples_changed=report.examples_changed,
    )


def preview_lines(candidates: ReviewCandidates, limit: int = 15) -> list[str]:
    """The check-inputs preview: counts per type, the most frequent values masked with context, the flagged
    ones, and how to review them."""
    replaced, residual = candidates.replaced, candidates.residual
    by_type: dict[str, int] = {}
    for flag in replaced:
        by_type[flag.entity_type] = by_type.get(flag.entity_type, 0) + flag.count
    types = ", ".join(f"{t} {n}" for t, n in sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))) or "nothing"
    out = [
        f"PII scrub preview: {candidates.examples_changed} of {candidates.examples} example(s) would change; "
        f"{len(replaced)} distinct value(s) replaced ({types}), shown masked:"
    ]
    out += [f"    {line}" for line in listing([("replaced", f) for f in _by_count(replaced)], limit)]
    if residual:
        out.append(
            f"  {len(residual)} value(s) the no_residual_pii check would flag after the scrub (it would block "
            "the chain):"
        )
        out += [f"    {line}" for line in listing([("flagged", f) for f in _by_count(residual)], limit)]
    out.append(
        "  review them: `forge pii review --list` (then --accept VALUE keeps a word, --reject VALUE always "
        "replaces it; decisions go to <data_root>/pii/review.json)"
    )
    return out


def _by_count(flags: list[FlaggedValue]) -> list[FlaggedValue]:
    return sorted(flags, key=lambda f: (-f.count, f.value.casefold()))


def listing(items: list[tuple[str, FlaggedValue]], limit: int | None = None, unmask: bool = False) -> list[str]:
    """`[3fa2c1] t*** x11 (PERSON, 6 examples): "... some t*** for ..."` per value (`unmask`: the value in full,
    for the person's own screen only); past `limit`, a count of the rest."""
    shown = items if limit is None else items[:limit]
    others = [f.value for _, f in items]
    out = []
    for _, flag in shown:
        line = describe(flag, others)
        if unmask:
            line = line.replace(mask(flag.value), flag.value, 1)
        out.append(f"[{value_id(flag.value)}] {line}")
    if limit is not None and len(items) > limit:
        rest = items[limit:]
        out.append(f"... and {len(rest)} more value(s), {sum(f.count for _, f in rest)} occurrence(s)")
    return out


def resolve(arguments: list[str], candidates: ReviewCandidates | None) -> list[str]:
    """Values from `--accept`/`--reject` arguments: a listing's [id] stands for its value, anything else is
    the value itself."""
    ids = {value_id(f.value): f.value for _, f in (candidates.ordered() if candidates else [])}
    return [ids.get(a.strip("[]"), a) for a in arguments]
