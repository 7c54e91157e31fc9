"""Which values the scrub replaced, and which ones the residual check flags, as `FlaggedValue`s to show a person.

- `replaced_values`: from a table and its scrubbed copy (scrub_examples' output), what each placeholder stands
  for. It reads only the scrub's output (placeholders are consistent over the dataset), so the preview shows
  exactly what the scrub does, whatever rules decided it.
- `residual_values`: the values the `no_residual_pii` check flags (check_residual_pii's FlaggedValues).
"""

from __future__ import annotations

import re

import polars as pl

from forge_pipeline.prepare.pii_display import mask, snippet


def align_placeholders(original: str, scrubbed: str) -> list[tuple[str, int, int]]:
    """(placeholder, start, end) in `original` of each placeholder in `scrubbed`: the text between placeholders
    is unchanged by the scrub, so the values are what fills the gaps, chosen so that every unchanged piece
    lines up (the first way that does, shortest values first). Line by line when the scrub kept the lines (a
    placeholder never spans a line break), which keeps the search short. [] when the texts do not line up."""
    from forge_pipeline.prepare.pii import PLACEHOLDER_RE

    if not PLACEHOLDER_RE.search(scrubbed):
        return []
    o_lines, s_lines = original.split("\n"), scrubbed.split("\n")
    if len(o_lines) != len(s_lines):
        return _align(original, scrubbed, PLACEHOLDER_RE) or []
    found, offset = [], 0
    for o_line, s_line in zip(o_lines, s_lines):
        if o_line != s_line:
            aligned = _align(o_line, s_line, PLACEHOLDER_RE)
            if aligned is None:
                return []
            found += [(holder, start + offset, end + offset) for holder, start, end in aligned]
        offset += len(o_line) + 1
    return found


MAX_ALIGN_CHARS = 20_000  # a longer text with a placeholder spanning lines is not lined up (rare; only shown)


def _align(original: str, scrubbed: str, placeholder_re) -> list[tuple[str, int, int]] | None:
    holders = placeholder_re.findall(scrubbed)
    if not holders:
        return [] if original == scrubbed else None
    if len(original) > MAX_ALIGN_CHARS:
        return None
    pieces = placeholder_re.split(scrubbed)
    match = re.fullmatch("(.+?)".join(re.escape(p) for p in pieces), original, re.DOTALL)
    if match is None:
        return None
    return [(holder, match.start(i + 1), match.end(i + 1)) for i, holder in enumerate(holders)]


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
                    # the span masked in place: a value inside a word ("pre" of "present") is shown where it is
                    value = before[start:end]
                    marked = before[:start] + mask(value) + before[end:]
                    context = snippet(marked, start, start + len(mask(value)))
                    flags[placeholder] = FlaggedValue(value, kind, 1, [eid], context, "scrub", None)
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
