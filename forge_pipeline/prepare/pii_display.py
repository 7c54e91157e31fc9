"""Showing a person what the PII scrub flagged or would replace, without putting the values anywhere.

Every place that displays a flagged value (the `no_residual_pii` check's result in Dagster's event log, the
`forge demo` failure, `forge check-inputs`, `forge pii review`) goes through `mask` and `masked_context`, so a
name never reaches a log in full: `tips` is shown as `t***` x11: "... some t*** for ...". The first letter and
the context are enough to recognise a word ("some t*** for the trip") or a person ("lunch with m***").

What is shown is a `FlaggedValue` (forge_pipeline.prepare.pii: value, entity_type, count, example_ids, a raw
context snippet, the signal that found it and the setting that changes it), from the residual check or from
the scrub's own replacements (pii_flags.replaced_values). Its raw parts live in memory only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MASK = "***"
CONTEXT_CHARS = 40  # characters shown on each side of a value
SHOWN_VALUES = 25  # values listed in a check result or a failure line; the rest are counted


def mask(value: str) -> str:
    """`tips` -> `t***`, `Maren Olsen` -> `M*** O***`, `vera@example.org` -> `v***`, `+44 20 7946 0958` -> `+***`.

    Words keep their first letter each (a name and a word are told apart by it and the context); anything
    holding a digit or an @ (phones, cards, e-mails, addresses) keeps only its first character."""
    value = " ".join(value.split())
    if not value:
        return MASK
    if any(c.isdigit() for c in value) or "@" in value:
        return value[0] + MASK
    return " ".join(word[0] + MASK for word in value.split())


def _word_pattern(values: Iterable[str]) -> re.Pattern | None:
    words = sorted({" ".join(v.split()) for v in values if v.strip()}, key=len, reverse=True)
    if not words:
        return None
    # whole words, any letter case, any whitespace between the parts of a multi-word value
    alternatives = (r"\s+".join(map(re.escape, w.split())) for w in words)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def snippet(text: str, start: int, end: int, width: int = CONTEXT_CHARS) -> str:
    """The raw text around text[start:end] on one line, cut at whole words (a cut word reads like another
    word), with `...` where it was cut. Raw: show it only through `mask_all` / `context_of`."""
    left = max(0, start - width)
    right = min(len(text), end + width)
    while left > 0 and not text[left - 1].isspace() and left < start:
        left += 1
    while right < len(text) and not text[right].isspace() and right > end:
        right -= 1
    inner = " ".join(text[left:right].split())
    return ("... " if left > 0 else "") + inner + (" ..." if right < len(text) else "")


def masked_context(text: str, start: int, end: int, also: Sequence[str] = ()) -> str:
    """`... some t*** for ...`: the snippet around text[start:end] with the value, and every occurrence of it
    or of the values in `also` (other flagged values near it), masked."""
    return mask_all(snippet(text, start, end), [text[start:end], *also])


def mask_all(text: str, values: Sequence[str]) -> str:
    """`text` with every occurrence of `values` (whole words, any letter case) masked, on one line."""
    pattern = _word_pattern(values)
    text = pattern.sub(lambda m: mask(m.group()), text) if pattern is not None else text
    return " ".join(text.split())


def context_of(flag, others: Sequence[str] = ()) -> str:
    """The masked context of a flagged value: its raw snippet with it and every other flagged value masked."""
    return mask_all(getattr(flag, "context", "") or "", [flag.value, *others])


def describe(flag, others: Sequence[str] = ()) -> str:
    """One line: `t*** x11 (PERSON, 6 examples): "... some t*** for ..."`, plus the setting that changes it
    when the detection side names one."""
    examples = len(set(flag.example_ids))
    where = f"{flag.entity_type}, {examples} example{'s' if examples != 1 else ''}"
    setting = getattr(flag, "setting", None)
    if setting:
        where += f", {setting}"
    line = f"{mask(flag.value)} x{flag.count} ({where})"
    context = context_of(flag, others)
    if context:
        line += f': "{context}"'
    return line


def lines(flags: Sequence, limit: int = SHOWN_VALUES) -> list[str]:
    """Every flagged value as a masked line, most frequent first; past `limit`, a count of the rest."""
    ordered = sorted(flags, key=lambda f: (-f.count, mask(f.value), f.value))
    values = [f.value for f in flags]
    out = [describe(f, values) for f in ordered[:limit]]
    if len(ordered) > limit:
        rest = ordered[limit:]
        out.append(f"... and {len(rest)} more value(s), {sum(f.count for f in rest)} occurrence(s)")
    return out


RERUN_CHECK = "forge demo --select scrubbed_examples"


def advice_lines() -> list[str]:
    """The settings that change what the scrub replaces and the check flags, each with its variable."""
    return [
        "What changes it:",
        "  - a word, not a person: `forge pii review --accept VALUE` (kept in <data_root>/pii/review.json, added to "
        "prepare.scrub.allow_list), or prepare.scrub.allow_list in forge.yaml / "
        "FORGE_PREPARE__SCRUB__ALLOW_LIST='[\"VALUE\"]'",
        "  - a person: `forge pii review --reject VALUE` (added to prepare.scrub.deny_list: replaced everywhere, in "
        "any letter case), or prepare.scrub.deny_list / FORGE_PREPARE__SCRUB__DENY_LIST='[\"VALUE\"]'",
        "  - a name found in one place replaced in every other: prepare.scrub.propagate_names / "
        "FORGE_PREPARE__SCRUB__PROPAGATE_NAMES=false turns that off (fewer ordinary words replaced, more "
        "lower-case names missed)",
        "  - every value in full, on your own screen: `forge pii review --list`",
    ]


def residual_report(flags: Sequence, rerun: str = RERUN_CHECK) -> str:
    """The text of a failed no_residual_pii check: masked values with counts and context, what changes them,
    and the command that checks again."""
    occurrences = sum(f.count for f in flags)
    head = (
        f"{len(flags)} value(s) left in scrubbed_examples after the scrub ({occurrences} occurrence(s)), shown masked:"
    )
    body = ["  " + line for line in lines(flags)]
    return "\n".join([head, *body, *advice_lines(), f"Then rerun: {rerun}"])
