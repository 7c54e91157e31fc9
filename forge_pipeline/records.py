"""The record formats that flow between stages (docs/CONVENTIONS.md, "Shared pieces").

An example is a chat in the OpenAI/HF `messages` form plus provenance columns. Every record a step drops
goes to a quarantine table with the file, line and reason, so nothing is lost silently.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

ROLES = ("system", "user", "assistant")

MESSAGE_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))

EXAMPLE_SCHEMA: dict[str, pl.DataType] = {
    "example_id": pl.String,
    "messages": MESSAGE_DTYPE,
    "source": pl.String,  # "vault" | "conversation" | "interaction" | "import"
    "source_path": pl.String,
    "conversation_id": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
    "tags": pl.List(pl.String),
}

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "stage": pl.String,  # the asset that dropped it
    "file": pl.String,
    "line": pl.Int64,  # 1-based line in the file, null when not line-oriented
    "record_id": pl.String,  # example_id / conversation_id when known
    "reason": pl.String,  # short machine-friendly reason, e.g. "invalid_json"
    "detail": pl.String,  # what exactly was wrong, for a person
    "payload": pl.String,  # the dropped record (JSON) or a prefix of the raw text
}


def iter_jsonl(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, object]]:
    """(line number, value) for every non-blank line of a JSONL file Forge wrote itself; a broken line raises
    `error` naming file and line (these files are outputs, not user input: user input is quarantined line by
    line by the ingest readers)."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise error(f"{path}:{number}: not valid JSON ({err.msg})") from None


def read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in iter_jsonl(path)]


CHAT_ROLES = ("system", "user", "assistant")


def read_chat_jsonl(path: Path, need_assistant: bool, error: type[Exception] = ValueError) -> list[dict]:
    """Rows of a JSONL file of `{"messages": [{"role", "content"}, ...]}` (catalog splits, eval prompts),
    checked line by line so a bad row fails with its file, line and field, not deep inside a trainer."""
    rows = []
    for number, row in iter_jsonl(path, error):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages:
            raise error(f"{path}:{number}: field 'messages' must be a non-empty list of chat turns")
        for index, message in enumerate(messages):
            if (not isinstance(message, dict) or message.get("role") not in CHAT_ROLES
                    or not isinstance(message.get("content"), str)):
                raise error(f"{path}:{number}: messages[{index}] needs 'role' in {list(CHAT_ROLES)} "
                            "and a string 'content'")
        if need_assistant and not any(m["role"] == "assistant" for m in messages):
            raise error(f"{path}:{number}: field 'messages' has no assistant turn")
        rows.append(row)
    return rows


def example_id_for(messages: Iterable[Mapping[str, str]]) -> str:
    """A stable content hash of the conversation: same messages, same id, on every machine."""
    canonical = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages],
                           ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def empty_examples() -> pl.DataFrame:
    return pl.DataFrame(schema=EXAMPLE_SCHEMA)


def examples_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows (dicts with EXAMPLE_SCHEMA keys) to a frame with exactly that schema and column order."""
    if not rows:
        return empty_examples()
    return pl.DataFrame(rows, schema=EXAMPLE_SCHEMA)


@dataclass
class Quarantine:
    """Collects dropped records for one stage."""

    stage: str
    rows: list[dict] = field(default_factory=list)

    def add(self, *, reason: str, detail: str, file: str | None = None, line: int | None = None,
            record_id: str | None = None, payload: object = None) -> None:
        if payload is not None and not isinstance(payload, str):
            payload = json.dumps(payload, ensure_ascii=False, default=str)
        if isinstance(payload, str) and len(payload) > 4000:
            payload = payload[:4000] + "…"
        self.rows.append({"stage": self.stage, "file": file, "line": line, "record_id": record_id,
                          "reason": reason, "detail": detail, "payload": payload})

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=QUARANTINE_SCHEMA) if self.rows else pl.DataFrame(schema=QUARANTINE_SCHEMA)

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["reason"]] = counts.get(row["reason"], 0) + 1
        return counts


def check_schema(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> list[str]:
    """Differences between a frame's schema and the expected one (empty list when it matches)."""
    problems = []
    for name, dtype in schema.items():
        if name not in frame.columns:
            problems.append(f"missing column {name}")
        elif frame.schema[name] != dtype:
            problems.append(f"column {name} is {frame.schema[name]}, expected {dtype}")
    extra = [c for c in frame.columns if c not in schema]
    if extra:
        problems.append(f"unexpected columns {extra}")
    return problems


def example_text(messages: Iterable[Mapping[str, str]]) -> str:
    """All message contents joined; what dedup and filters look at."""
    return "\n".join(m["content"] for m in messages)
