"""The interaction store: append-only JSONL, one file per UTC day under settings.paths.interactions.

Each record is validated before it is written, written as one line in one `write` call under a file lock
(so concurrent writers, threads or processes, never interleave), and fsync'd before `append` returns: a
2xx from the server means the record survives a crash.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

from forge_pipeline.atomic import locked
from forge_pipeline.records import ChatMessage, InteractionIn, ReplyChoice, read_jsonl  # noqa: F401 (re-exported)


class Interaction(InteractionIn):
    interaction_id: str
    received_at: str


def _now() -> datetime:
    return datetime.now(UTC)


class InteractionStore:
    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, when: datetime) -> Path:
        return self.directory / f"{when.astimezone(UTC):%Y-%m-%d}.jsonl"

    def append(self, record: InteractionIn, when: datetime | None = None) -> Interaction:
        when = when or _now()
        stored = Interaction(
            **record.model_dump(), interaction_id=uuid.uuid4().hex, received_at=when.isoformat().replace("+00:00", "Z")
        )
        payload = stored.model_dump()
        for optional in ("choice", "response_id"):  # newer fields, written only when given: older lines unchanged
            if payload[optional] is None:
                del payload[optional]
        line = (json.dumps(payload, ensure_ascii=False) + "\n").encode("utf-8")
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
        return self.path_for(datetime.fromisoformat(stored.received_at))

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


def served_log_dir(settings) -> Path:
    """Where the server logs per-response statistics (next to the manifest it serves from)."""
    return settings.paths.manifest.parent / "served"


class ServedLog:
    """Per-response statistics, one JSONL line each (no message text: this log is for comparing versions):
    response_id, model_version, route (current/candidate), latency_ms, prompt/completion tokens, served_at.

    Recent response ids are kept in memory so a rating posted with `response_id` lands on the version that
    produced the response, whatever the client claims.
    """

    def __init__(self, directory: Path, remember: int = 50_000):
        self.directory = Path(directory)
        self.remember = remember
        self._versions: dict[str, str] = {}

    def append(
        self,
        response_id: str,
        model_version: str,
        route: str,
        latency_ms: float,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        when: datetime | None = None,
    ) -> dict:
        when = when or _now()
        record = {
            "response_id": response_id,
            "model_version": model_version,
            "route": route,
            "latency_ms": round(latency_ms, 3),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "served_at": when.isoformat().replace("+00:00", "Z"),
        }
        path = self.directory / f"{when.astimezone(UTC):%Y-%m-%d}.jsonl"
        self.directory.mkdir(parents=True, exist_ok=True)
        with locked(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
            finally:
                os.close(fd)
        self._versions[response_id] = model_version
        if len(self._versions) > self.remember:
            del self._versions[next(iter(self._versions))]
        return record

    def version_of(self, response_id: str) -> str | None:
        if response_id in self._versions:
            return self._versions[response_id]
        for record in self.read_all():  # served before this process started
            if record.get("response_id") == response_id:
                return record.get("model_version")
        return None

    def read_all(self) -> list[dict]:
        return [record for path in sorted(self.directory.glob("*.jsonl")) for record in read_jsonl(path)]
