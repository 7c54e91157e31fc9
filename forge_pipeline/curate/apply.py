"""Apply review decisions to an example table.

approved: kept. rejected: dropped into the quarantine with the reviewer's reason. edited: kept with the new
messages and a new example_id (the content hash of the new messages), the original id in `edited_from` and
the provenance columns unchanged. skipped or unreviewed: kept only when `include_unreviewed`; otherwise
quarantined as `not_reviewed` so the count of what was left out is visible.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from forge_pipeline.curate.decisions import Decision
from forge_pipeline.records import EXAMPLE_SCHEMA, MESSAGE_DTYPE, ColumnType, Quarantine, example_id_for

STAGE = "curated_examples"


def apply_decisions(
    frame: pl.DataFrame, decisions: Mapping[str, Decision], include_unreviewed: bool
) -> tuple[pl.DataFrame, Quarantine, dict[str, int]]:
    missing = [c for c in EXAMPLE_SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"deduplicated_examples lacks column(s) {missing}; expected EXAMPLE_SCHEMA")
    quarantine = Quarantine(STAGE)
    counts = {
        "approved": 0,
        "rejected": 0,
        "edited": 0,
        "skipped": 0,
        "unreviewed": 0,
        "included": 0,
        "excluded_unreviewed": 0,
    }
    rows: list[dict] = []
    for row in frame.iter_rows(named=True):
        example_id = row["example_id"]
        decision = decisions.get(example_id)
        status = decision.status if decision else "unreviewed"
        counts[status] += 1
        if decision is not None and decision.status == "rejected":
            quarantine.add(
                reason="rejected_by_reviewer",
                detail=decision.reason or "",
                file=row["source_path"],
                record_id=example_id,
                payload={"messages": row["messages"]},
            )
            continue
        if status in ("skipped", "unreviewed") and not include_unreviewed:
            counts["excluded_unreviewed"] += 1
            quarantine.add(
                reason="not_reviewed",
                detail=f"{status}; curate.include_unreviewed is false",
                file=row["source_path"],
                record_id=example_id,
                payload={"messages": row["messages"]},
            )
            continue
        out = dict(row)
        out["edited_from"] = None
        if decision is not None and decision.status == "edited":
            assert decision.messages is not None  # the store refuses an edit without messages (decisions._validate)
            messages = [{"role": m["role"], "content": m["content"]} for m in decision.messages]
            out["messages"] = messages
            out["example_id"] = example_id_for(messages)
            out["edited_from"] = example_id
        out["curation_status"] = status
        rows.append(out)
        counts["included"] += 1

    extra = [c for c in frame.columns if c not in EXAMPLE_SCHEMA and c not in ("curation_status", "edited_from")]
    schema: dict[str, ColumnType] = {
        **EXAMPLE_SCHEMA,
        **{c: frame.schema[c] for c in extra},
        "edited_from": pl.String,
        "curation_status": pl.String,
    }
    schema["messages"] = MESSAGE_DTYPE
    curated = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return curated, quarantine, counts
