"""Which values the scrub replaced, and which ones the residual check flags, as `FlaggedValue`s to show a person.

- `replaced_values`: from a table and its scrubbed copy (scrub_examples' output), what each placeholder stands
  for. It reads only the scrub's output (placeholders are consistent over the dataset), so the preview shows
  exactly what the scrub does, whatever rules decided it.
- `residual_values`: the values `find_residual_pii` flags, with their place in the text.
"""

from __future__ import annotations

import polars as pl

from forge_pipeline.prepare.pii_display import FlaggedValue, group_occurrences


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


def replaced_values(original: pl.DataFrame, scrubbed: pl.DataFrame) -> list[FlaggedValue]:
    """What the scrub replaced in messages, tags and source paths: one FlaggedValue per placeholder (its
    value as first written, how often it was replaced, in which examples, with context)."""
    by_id = {
        row["example_id"]: row for row in original.select("example_id", "messages", "tags", "source_path").to_dicts()
    }
    occurrences = []
    for row in scrubbed.select("original_example_id", "messages", "tags", "source_path").to_dicts():
        source = by_id.get(row["original_example_id"])
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
                occurrences.append((placeholder, row["original_example_id"], before, start, end))
    # one value per placeholder: the scrub gives the same value (any case) the same placeholder
    by_placeholder = group_occurrences(occurrences)
    merged: dict[str, FlaggedValue] = {}
    for flag in by_placeholder:
        placeholder = flag.entity_type
        kind = placeholder.strip("<>").rsplit("_", 1)[0]
        if placeholder in merged:
            into = merged[placeholder]
            into.count += flag.count
            into.example_ids += [e for e in flag.example_ids if e not in into.example_ids]
            into.contexts += flag.contexts[: max(0, 3 - len(into.contexts))]
        else:
            merged[placeholder] = FlaggedValue(flag.value, flag.count, flag.example_ids, flag.contexts, kind)
    return list(merged.values())


def residual_values(
    frame: pl.DataFrame, scrub, analyzer=None, *, original: pl.DataFrame | None = None, cache_dir=None
) -> list[FlaggedValue]:
    """The values find_residual_pii flags in `frame` (scrubbed examples), grouped, with context; the same two
    passes (structured recognizers and the deny list outside placeholders; every name the scrubber knows from
    `original`, in any letter case), keeping where each value is."""
    from forge_pipeline.prepare import pii

    analyzer = analyzer or pii.build_analyzer(scrub.spacy_model, scrub)
    locs, texts, tags = pii._fields(frame)
    structured = scrub.model_copy(
        update={"entities": [e for e in scrub.entities if e not in pii.NER_ENTITIES], "propagate_names": False}
    )
    cache = pii.DetectionCache(cache_dir, structured) if cache_dir is not None else None
    found = pii.detect_corpus(analyzer, texts, tags, structured, cache=cache)
    occurrences = []

    def outside_placeholders(text, dets, eid):
        holders = [(m.start(), m.end()) for m in pii.PLACEHOLDER_RE.finditer(text)]
        for d in dets:
            if not any(d.start < e and d.end > s for s, e in holders):
                occurrences.append((d.entity_type, eid, text, d.start, d.end))

    for (eid, _), text, dets, row_tags, tag_dets in zip(locs, texts, found.texts, tags, found.tags):
        outside_placeholders(text, dets, eid)
        for tag, td in zip(row_tags, tag_dets):
            outside_placeholders(tag, td, eid)
    if original is not None and original.height:
        _, o_texts, o_tags = pii._fields(original)
        o_cache = pii.DetectionCache(cache_dir, scrub) if cache_dir is not None else None
        known = pii.NameIndex(
            pii.detect_corpus(
                analyzer, o_texts, o_tags, scrub, cache=o_cache, known_names=pii.known_names_of(original)
            ).name_terms
        )
        for (eid, _), text, row_tags in zip(locs, texts, tags):
            for src in [text, *row_tags]:
                regions = pii.code_regions(src) if scrub.skip_code and ("`" in src or "~~~" in src) else []
                for start, end, _ in known.find(src):
                    if not pii._inside(pii.Detection("PERSON", start, end, 1.0), regions):
                        occurrences.append(("PERSON", eid, src, start, end))
    # a value both passes find is one value (a deny-list name is also a known name)
    return group_occurrences(occurrences, by_type=False)
