"""Small helpers every stage's assets use to attach metadata and keep dropped records.

Tables in the UI: `table_metadata` gives Dagster the row count and column schema (the asset's Columns tab),
`table_preview` a few rows as a `MetadataValue.table`, `chat_columns` the user and assistant text of chat
examples (the system prompt, the same in every row, is left out), and `frame_data_version` a content hash as the
asset's data version, so re-running an asset that produces the same rows leaves everything downstream in sync.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import dagster as dg
import polars as pl

from forge_pipeline.atomic import atomic_path
from forge_pipeline.records import Quarantine, check_schema
from forge_pipeline.settings import ForgeSettings

PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")  # the scrubber's consistent placeholders: <PERSON_1>, <EMAIL_ADDRESS_2>


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


def _shorten(value, width: int) -> str | int | float | bool | None:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value).replace("\n", " ⏎ ")
    if len(text) <= width:
        return text
    match = PLACEHOLDER.search(text)
    if match and match.end() > width - 1:
        # Centre the cell on the first placeholder, so the preview shows what the scrub did.
        start = max(0, match.start() - width // 3)
        text = "…" + text[start:]
    return text if len(text) <= width else text[: width - 1] + "…"


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])


def table_preview(frame: pl.DataFrame, columns: list[str] | None = None, rows: int = 10, width: int = 160):
    """The first rows as a Dagster table (typed columns, long cells shortened)."""
    if columns:
        frame = frame.select([c for c in columns if c in frame.columns])
    shown = frame.head(rows)
    records = [dg.TableRecord({k: _shorten(v, width) for k, v in row.items()}) for row in shown.iter_rows(named=True)]
    return dg.MetadataValue.table(records=records, schema=column_schema(shown))


def table_metadata(frame: pl.DataFrame) -> dict:
    """Dagster's standard table metadata: `dagster/row_count` and `dagster/column_schema`."""
    return {
        "dagster/row_count": dg.MetadataValue.int(frame.height),
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(frame)),
    }


def frame_data_version(frame: pl.DataFrame) -> dg.DataVersion:
    """A content hash of the rows and schema (polars' row hash, fixed seed): same rows, same data version."""
    digest = hashlib.sha256(repr(list(frame.schema.items())).encode())
    if frame.height:
        digest.update(frame.hash_rows(seed=0).to_numpy().tobytes())
    return dg.DataVersion(digest.hexdigest()[:16])


def _turns(messages, role: str) -> str:
    return " ⏎ ".join(m["content"] or "" for m in (messages or []) if m["role"] == role)


def chat_columns(frame: pl.DataFrame, messages: str = "messages") -> pl.DataFrame:
    """`user`, `assistant` (their turns' text, without the system prompt) and `placeholders` (the scrubber's
    placeholders in the example) beside the frame's other columns."""
    users = [_turns(m, "user") for m in frame[messages].to_list()]
    assistants = [_turns(m, "assistant") for m in frame[messages].to_list()]
    found = [", ".join(dict.fromkeys(PLACEHOLDER.findall(u + " " + a))) for u, a in zip(users, assistants)]
    return frame.with_columns(
        pl.Series("user", users, dtype=pl.String),
        pl.Series("assistant", assistants, dtype=pl.String),
        pl.Series("placeholders", found, dtype=pl.String),
    )


def relative_path(path: str | None, settings: ForgeSettings) -> str | None:
    """A path relative to the input folder or data root it lives under (the UI has no room for absolute ones)."""
    if not path:
        return path
    for base in (settings.vault_dir, settings.conversations_dir, settings.paths.root, *settings.interaction_dirs):
        try:
            return str(Path(path).resolve().relative_to(Path(base).resolve()))
        except (ValueError, OSError):
            continue
    return path


def _schema_words() -> set[str]:
    from forge_pipeline.ingest.conversations import CONVERSATIONS_SCHEMA
    from forge_pipeline.ingest.examples import TRAINING_EXAMPLES_SCHEMA
    from forge_pipeline.ingest.vault import NOTES_SCHEMA

    message_keys = {"role", "content", "messages", "mapping", "parts", "author", "create_time", "title", "id", "name"}
    return {*CONVERSATIONS_SCHEMA, *TRAINING_EXAMPLES_SCHEMA, *NOTES_SCHEMA, *message_keys}


def mask_quoted_values(detail: str, keep: set[str]) -> str:
    """Quoted values become '…' (they may be personal data, and this runs before the scrub); quoted field names of
    Forge's own schemas stay, so "no 'messages' field" still says which field."""

    def replace(match: re.Match) -> str:
        return match.group(0) if match.group(0)[1:-1] in keep else "'…'"

    return re.sub(r"'[^'\n]*'|\"[^\"\n]*\"", replace, detail)


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
        keep = _schema_words()
        shown = frame.head(20).with_columns(
            pl.col("detail").map_elements(lambda d: mask_quoted_values(d, keep), return_dtype=pl.String),
            pl.col("file").map_elements(lambda p: relative_path(p, settings), return_dtype=pl.String),
        )
        # Reason first: on a narrow window the columns that say why stay in view; the file path comes last.
        metadata["dropped_preview"] = table_preview(shown, ["reason", "detail", "line", "file"], rows=20)
    return metadata


def schema_check_result(frame: pl.DataFrame, schema: dict) -> dg.AssetCheckResult:
    """A table's contract as a check: passed when `frame` has exactly `schema`, the differences otherwise."""
    problems = check_schema(frame, schema)
    return dg.AssetCheckResult(
        passed=not problems, metadata={"problems": dg.MetadataValue.json(problems), "rows": frame.height}
    )
