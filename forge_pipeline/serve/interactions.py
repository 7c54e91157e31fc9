"""The interaction store: append-only JSONL, one file per UTC day under settings.paths.interactions.

Each record is validated before it is written, written as one line in one `write` call under a file lock
(so concurrent writers, threads or processes, never interleave), and fsync'd before `append` returns: a
2xx from the server means the record survives a crash.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from forge_pipeline.atomic import locked


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be empty")
        return value


class InteractionIn(BaseModel):
    """What a client posts to /v1/interactions."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1)
    rating: Literal["up", "down"] | None = None
    feedback: str | None = None
    corrected_reply: str | None = None
    model_version: str | None = None

    @model_validator(mode="after")
    def _has_user_message(self) -> "InteractionIn":
        if not any(message.role == "user" for message in self.messages):
            raise ValueError("messages need at least one message with role 'user'")
        return self


class Interaction(InteractionIn):
    interaction_id: str
    received_at: str


def _now() -> datetime:
    return datetime.now(timezone.utc)


class InteractionStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, when: datetime) -> Path:
        return self.directory / f"{when.astimezone(timezone.utc):%Y-%m-%d}.jsonl"

    def append(self, record: InteractionIn, when: datetime | None = None) -> Interaction:
        when = when or _now()
        stored = Interaction(**record.model_dump(), interaction_id=uuid.uuid4().hex,
                             received_at=when.isoformat().replace("+00:00", "Z"))
        line = (json.dumps(stored.model_dump(), ensure_ascii=False) + "\n").encode("utf-8")
        path = self.path_for(when)
        self.directory.mkdir(parents=True, exist_ok=True)
        with locked(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        return stored

    def path_for_id(self, stored: Interaction) -> Path:
        return self.path_for(datetime.fromisoformat(stored.received_at.replace("Z", "+00:00")))

    def read_all(self) -> list[Interaction]:
        """Every stored record, oldest file first; a bad line raises naming file and line."""
        records = []
        for path in sorted(self.directory.glob("*.jsonl")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    records.append(Interaction.model_validate_json(line))
                except ValueError as err:
                    raise ValueError(f"{path}:{number}: invalid interaction record: {err}") from None
        return records
