"""The record formats that flow between stages (docs/CONVENTIONS.md, "Shared pieces").

An example is a chat in the OpenAI/HF `messages` form plus provenance columns. Every record a step drops
goes to a quarantine table with the file, line and reason, so nothing is lost silently.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = get_args(Role)

# A column's type as the schemas write it: a class (pl.String) or an instance carrying parameters (pl.List(...)).
ColumnType = pl.DataType | type[pl.DataType]

MESSAGE_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))

EXAMPLE_SCHEMA: dict[str, ColumnType] = {
    "example_id": pl.String,
    "messages": MESSAGE_DTYPE,
    "source": pl.String,  # "vault" | "conversation" | "interaction" | "import"
    "source_path": pl.String,
    "conversation_id": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
    "tags": pl.List(pl.String),
}

QUARANTINE_SCHEMA: dict[str, ColumnType] = {
    "stage": pl.String,  # the asset that dropped it
    "file": pl.String,
    "line": pl.Int64,  # 1-based line in the file, null when not line-oriented
    "record_id": pl.String,  # example_id / conversation_id when known
    "reason": pl.String,  # short machine-friendly reason, e.g. "invalid_json"
    "detail": pl.String,  # what exactly was wrong, for a person
    "payload": pl.String,  # the dropped record (JSON) or a prefix of the raw text
}


def iter_jsonl(path: Path, error: type[Exception] = ValueError) -> Iterator[tuple[int, Any]]:
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


def read_chat_jsonl(path: Path, need_assistant: bool, error: type[Exception] = ValueError) -> list[dict]:
    """Rows of a JSONL file of `{"messages": [{"role", "content"}, ...]}` (catalog splits, eval prompts),
    checked line by line with ChatMessage so a bad row fails with its file, line and field, not deep inside a
    trainer."""
    rows = []
    for number, row in iter_jsonl(path, error):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages:
            raise error(f"{path}:{number}: field 'messages' must be a non-empty list of chat turns")
        for index, message in enumerate(messages):
            try:
                ChatMessage.model_validate(message)
            except ValidationError as err:
                reason = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in err.errors())
                raise error(
                    f"{path}:{number}: messages[{index}] needs 'role' in {list(ROLES)} "
                    f"and a non-empty string 'content' ({reason})"
                ) from None
        if need_assistant and not any(m["role"] == "assistant" for m in messages):
            raise error(f"{path}:{number}: field 'messages' has no assistant turn")
        rows.append(row)
    return rows


# -- chat messages and interaction records (the one pydantic model of a chat turn) ----------------------------


class ChatMessage(BaseModel):
    """One chat turn as Forge stores and trains on it: every reader of chat data (interactions, user files in
    `forge dataset validate`, catalog splits, eval prompts) checks turns with this model."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be empty")
        return value


class ReplyChoice(BaseModel):
    """Two candidate replies to the conversation's last user turn and which one the person preferred."""

    model_config = ConfigDict(extra="forbid")

    replies: list[str] = Field(min_length=2, max_length=2)
    chosen: Literal[0, 1]
    # Which model version wrote each reply (A/B side by side); lets `forge compare` count wins per version.
    model_versions: list[str | None] | None = Field(default=None, min_length=2, max_length=2)

    @field_validator("replies")
    @classmethod
    def _distinct_non_empty(cls, value: list[str]) -> list[str]:
        if any(not reply.strip() for reply in value):
            raise ValueError("replies must not be empty")
        if value[0].strip() == value[1].strip():
            raise ValueError("the two replies are identical: there is nothing to choose between")
        return value


# The example tags of replies a person wrote or picked in the playground (ingest.examples.interaction_tags):
# dedup keeps them over automatic examples and the catalog never holds them out.
PERSON_TAUGHT_TAGS = ("correction", "choice")


class InteractionIn(BaseModel):
    """What a client posts to /v1/interactions.

    Feedback forms: `rating` (up/down) on the last assistant reply; `corrected_reply` replacing it (a
    correction is a preference: corrected over original); `choice` between two replies to the last user turn.
    `response_id` is the `id` of the chat completion rated: the server then fills `model_version` itself.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1)
    rating: Literal["up", "down"] | None = None
    feedback: str | None = None
    corrected_reply: str | None = None
    choice: ReplyChoice | None = None
    model_version: str | None = None
    response_id: str | None = None

    @model_validator(mode="after")
    def _has_user_message(self) -> InteractionIn:
        if not any(message.role == "user" for message in self.messages):
            raise ValueError("messages need at least one message with role 'user'")
        if self.choice is not None:
            if self.messages[-1].role != "user":
                raise ValueError("choice: messages must end with the user turn the two replies answer")
            if self.corrected_reply is not None or self.rating is not None:
                raise ValueError("choice: send a choice on its own, without rating or corrected_reply")
        if self.corrected_reply is not None and not self.corrected_reply.strip():
            raise ValueError("corrected_reply must not be empty")
        return self


def example_id_for(messages: Iterable[Mapping[str, str]]) -> str:
    """A stable content hash of the conversation: same messages, same id, on every machine."""
    canonical = json.dumps(
        [{"role": m["role"], "content": m["content"]} for m in messages], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def empty_examples() -> pl.DataFrame:
    return pl.DataFrame(schema=EXAMPLE_SCHEMA)


def examples_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows (dicts with EXAMPLE_SCHEMA keys) to a frame with exactly that schema and column order."""
    if not rows:
        return empty_examples()
    return pl.DataFrame(rows, schema=EXAMPLE_SCHEMA)


# C0 controls except tab and newline, DEL and C1 controls: what a terminal obeys (ESC sequences retitle or clear
# it, BEL rings, CR overwrites a line). Text from notes and chats never needs them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Whole ANSI sequences (CSI like ESC[2J, OSC like ESC]0;title BEL), so no "[2J" debris is left behind.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")


def strip_control(text: str) -> str:
    """`text` without ANSI escape sequences and control characters (CRLF and lone CR become newlines first),
    for training data."""
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", text)


def escape_control(value: object) -> str:
    """`str(value)` with control characters written as visible escapes (`\\x1b`): for quarantine details and
    for anything a command prints from data, so a crafted record cannot drive the reader's terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(value))


@dataclass
class Quarantine:
    """Collects dropped records for one stage."""

    stage: str
    rows: list[dict] = field(default_factory=list)

    def add(
        self,
        *,
        reason: str,
        detail: str,
        file: str | None = None,
        line: int | None = None,
        record_id: str | None = None,
        payload: object = None,
    ) -> None:
        if payload is not None and not isinstance(payload, str):
            payload = json.dumps(payload, ensure_ascii=False, default=str)
        if isinstance(payload, str) and len(payload) > 4000:
            payload = payload[:4000] + "…"
        # Dropped records keep what was wrong with them, escaped: a detail or raw payload quoting an ESC
        # sequence must not act on the terminal of whoever reads the quarantine.
        self.rows.append(
            {
                "stage": self.stage,
                "file": file,
                "line": line,
                "record_id": record_id,
                "reason": reason,
                "detail": escape_control(detail),
                "payload": escape_control(payload) if isinstance(payload, str) else payload,
            }
        )

    def frame(self) -> pl.DataFrame:
        return (
            pl.DataFrame(self.rows, schema=QUARANTINE_SCHEMA) if self.rows else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row["reason"]] = counts.get(row["reason"], 0) + 1
        return counts


def check_schema(frame: pl.DataFrame, schema: Mapping[str, ColumnType]) -> list[str]:
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
