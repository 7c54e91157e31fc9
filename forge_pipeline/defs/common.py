"""Small helpers every stage's assets use to attach metadata and keep dropped records."""

from __future__ import annotations

import dagster as dg
import polars as pl

from forge_pipeline.atomic import atomic_path
from forge_pipeline.records import Quarantine
from forge_pipeline.settings import ForgeSettings


def markdown_preview(frame: pl.DataFrame, columns: list[str] | None = None, rows: int = 10, width: int = 80) -> str:
    """A Markdown table of the first rows, long cells shortened, for the Dagster UI."""
    if columns:
        frame = frame.select([c for c in columns if c in frame.columns])
    if frame.is_empty():
        return "_(empty)_"

    def cell(value) -> str:
        text = str(value).replace("\n", " ").replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.head(rows).iter_rows()]
    return "\n".join([head, rule, *body])


def keep_quarantine(settings: ForgeSettings, quarantine: Quarantine) -> dict[str, dg.MetadataValue]:
    """Write a stage's dropped records to <data_root>/quarantine/<stage>.parquet and describe them."""
    target = settings.paths.quarantine / f"{quarantine.stage}.parquet"
    frame = quarantine.frame()
    with atomic_path(target) as tmp:
        frame.write_parquet(tmp)
    metadata: dict[str, dg.MetadataValue] = {
        "dropped": dg.MetadataValue.int(frame.height),
        "dropped_by_reason": dg.MetadataValue.json(quarantine.reason_counts()),
        "quarantine_path": dg.MetadataValue.path(str(target)),
    }
    if frame.height:
        # Dagster keeps metadata forever and this runs before the PII scrub: a detail may quote the offending
        # value ("messages[0].role is 'Jonas Berg'", a bad timestamp string), so the event log gets the detail
        # with quoted values masked. The full detail stays in the quarantine file (`forge check-inputs`).
        masked = frame.with_columns(pl.col("detail").str.replace_all(r"'[^'\n]*'|\"[^\"\n]*\"", "'…'"))
        metadata["dropped_preview"] = dg.MetadataValue.md(
            markdown_preview(masked, ["file", "line", "reason", "detail"], rows=20)
        )
    return metadata
