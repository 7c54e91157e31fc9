"""Showing a person what the PII scrub flagged or would replace, without putting the values anywhere.

Every place that displays a flagged value (the `no_residual_pii` check's result in Dagster's event log, the
`forge demo` failure, `forge check-inputs`, `forge pii review`) goes through `mask` and `masked_context`, so a
name never reaches a log in full: `tips` is shown as `t***` x11: "... some t*** for ...". The first letter and
the context are enough to recognise a word ("some t*** for the trip") or a person ("lunch with m***").

`FlaggedValue` is what the detection side hands over: one value, how often it occurs, in which examples, and
the text around its first occurrences. The raw value lives in memory only; `lines` renders it masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MASK = "***"
CONTEXT_CHARS = 40  # characters shown on each side of a value
SHOWN_VALUES = 25  # values listed in a check result or a failure line; the rest are counted


@dataclass
class FlaggedValue:
    """A value the scrub replaced or the residual check flagged, with where it occurs.

    `value` and `contexts` are raw (the person's own text): display them only through `mask` /
    `masked_context`. `contexts` are (text, start, end) of the first few occurrences."""

    value: str
    count: int
    example_ids: list[str]
    contexts: list[tuple[str, int, int]] = field(default_factory=list, repr=False)
    entity_type: str = "PERSON"


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


def masked_context(text: str, start: int, end: int, also: Sequence[str] = (), width: int = CONTEXT_CHARS) -> str:
    """`... some t*** for ...`: the text around text[start:end] on one line, the value masked, and every other
    occurrence of it or of the values in `also` (other flagged values near it) masked too."""
    left = max(0, start - width)
    right = min(len(text), end + width)
    # whole words at the edges: a cut word reads like a different word
    while left > 0 and not text[left - 1].isspace() and left < start:
        left += 1
    while right < len(text) and not text[right].isspace() and right > end:
        right -= 1
    value = text[start:end]
    pattern = _word_pattern([value, *also])
    parts = [text[left:start], mask(value), text[end:right]]
    if pattern is not None:
        parts[0] = pattern.sub(lambda m: mask(m.group()), parts[0])
        parts[2] = pattern.sub(lambda m: mask(m.group()), parts[2])
    snippet = " ".join("".join(parts).split())
    return ("... " if left > 0 else "") + snippet + (" ..." if right < len(text) else "")


def mask_all(text: str, values: Sequence[str]) -> str:
    """`text` with every occurrence of `values` (whole words, any letter case) masked, on one line."""
    pattern = _word_pattern(values)
    text = pattern.sub(lambda m: mask(m.group()), text) if pattern is not None else text
    return " ".join(text.split())


def context_of(flag, others: Sequence[str] = ()) -> str:
    """The masked context of a flagged value: from (text, start, end) places (`contexts`) or from a raw
    snippet around the value (`context`, the detection side's form)."""
    contexts = getattr(flag, "contexts", None)
    if contexts:
        text, start, end = contexts[0]
        return masked_context(text, start, end, others)
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


def group_occurrences(
    occurrences: Iterable[tuple[str, str, str, int, int]], keep_contexts: int = 3, by_type: bool = True
) -> list[FlaggedValue]:
    """(entity_type, example_id, text, start, end) occurrences -> one FlaggedValue per value (letter case and
    spacing ignored: `Tips` and `tips` are one value; with by_type=False one per value whatever the type, the
    type of its first occurrence kept), in order of first occurrence. The same place counts once."""
    grouped: dict[tuple[str, str], FlaggedValue] = {}
    seen: set[tuple] = set()
    for entity_type, example_id, text, start, end in occurrences:
        if (entity_type if by_type else "", example_id, id(text), start, end) in seen:
            continue
        seen.add((entity_type if by_type else "", example_id, id(text), start, end))
        value = text[start:end]
        key = (entity_type if by_type else "", " ".join(value.split()).casefold())
        flag = grouped.get(key)
        if flag is None:
            flag = grouped[key] = FlaggedValue(value, 0, [], [], entity_type)
        flag.count += 1
        if example_id not in flag.example_ids:
            flag.example_ids.append(example_id)
        if len(flag.contexts) < keep_contexts:
            flag.contexts.append((text, start, end))
    return list(grouped.values())


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
