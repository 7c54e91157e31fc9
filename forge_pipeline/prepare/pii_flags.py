"""Which values the scrub replaced, and which ones the residual check flags, as `FlaggedValue`s to show a person.

- `replaced_values`: from a table and its scrubbed copy (scrub_examples' output), what each placeholder stands
  for. It reads only the scrub's output (placeholders are consistent over the dataset), so the preview shows
  exactly what the scrub does, whatever rules decided it.
- `residual_values`: the values the `no_residual_pii` check flags (check_residual_pii's FlaggedValues).
"""

from __future__ import annotations

import polars as pl

from forge_pipeline.prepare.pii_display import snippet


def align_placeholders(original: str, scrubbed: str) -> list[tuple[str, int, int]]:
    """(placeholder, start, end) in `original` of each placeholder in `scrubbed`: the text between placeholders
    is unchanged by the scrub, so each value ends where the next unchanged piece begins. [] when the two texts
    do not line up (a text that holds `<TYPE_n>`-like strings itself)."""
    from forge_pipeline.prepare.pii import PLACEHOLDER_RE

    holders = list(PLACEHOLDER_RE.finditer(scrubbed))
    if not holders:
        return []
    pieces = [scrubbed[: holders[0].start()]]
    pieces += [scrubbed[a.end() : b.start()] for a, b in zip(holders, holders[1:])]
    pieces.append(scrubbed[holders[-1].end() :])
    if not original.startswith(pieces[0]) or not original.endswith(pieces[-1]):
        return []
    found, pos = [], len(pieces[0])
    for i, (holder, following) in enumerate(zip(holders, pieces[1:])):
        if i == len(holders) - 1:
            end = len(original) - len(following)
        else:  # two placeholders with nothing between them cannot be told apart
            end = original.find(following, pos + 1) if following else -1
        if end <= pos:
            return []
        found.append((holder.group(), pos, end))
        pos = end + len(following)
    return found


def replaced_values(original: pl.DataFrame, scrubbed: pl.DataFrame) -> list:
    """What the scrub replaced in messages, tags and source paths: one FlaggedValue per placeholder (the
    scrub gives one value, in any letter case, one placeholder), with the value as first written, how often
    it was replaced, in which examples (original ids) and the raw text around its first occurrence."""
    from forge_pipeline.prepare.pii import FlaggedValue

    by_id = {
        row["example_id"]: row for row in original.select("example_id", "messages", "tags", "source_path").to_dicts()
    }
    flags: dict[str, FlaggedValue] = {}
    for row in scrubbed.select("original_example_id", "messages", "tags", "source_path").to_dicts():
        eid = row["original_example_id"]
        source = by_id.get(eid)
        if source is None:
            continue
        pairs = [
            (a.get("content") or "", b.get("content") or "")
            for a, b in zip(source["messages"] or [], row["messages"] or [])
        ]
        pairs += list(zip(source["tags"] or [], row["tags"] or []))
        pairs.append((source["source_path"] or "", row["source_path"] or ""))
        for before, after in pairs:
            if before == after:
                continue
            for placeholder, start, end in align_placeholders(before, after):
                flag = flags.get(placeholder)
                if flag is None:
                    kind = placeholder.strip("<>").rsplit("_", 1)[0]
                    flags[placeholder] = FlaggedValue(
                        before[start:end], kind, 1, [eid], snippet(before, start, end), "scrub", None
                    )
                    continue
                flag.count += 1
                if eid not in flag.example_ids:
                    flag.example_ids.append(eid)
    return list(flags.values())


def residual_values(
    frame: pl.DataFrame, scrub, analyzer=None, *, original: pl.DataFrame | None = None, cache_dir=None, notes=None
) -> list:
    """The values the residual check flags in `frame` (scrubbed examples), one per value with its count and
    context (check_residual_pii's FlaggedValue: raw, shown only through pii_display)."""
    from forge_pipeline.prepare.pii import check_residual_pii

    return check_residual_pii(frame, scrub, analyzer, original=original, cache_dir=cache_dir, notes=notes).flagged
