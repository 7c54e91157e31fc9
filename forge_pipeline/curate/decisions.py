"""Review decisions, kept in SQLite under the data root and keyed by the example's original id.

Keying by the content-hash `example_id` (not by a row number or a dataset version) is what lets a review
resume where it stopped and carry over to new dataset versions: the same example gets the same id again.
An edit stores the new messages beside the original ones; the curated dataset then gives the edited
example a new id and records the original id as `edited_from`.

Every change appends the previous state to `history`, so `undo()` can step back any number of times.
Several reviewers (or two terminals) may work on one database at once: each store is a session, `undo()`
steps back only that session's own changes, and a decision made on a stale view (someone else decided the
example since it was shown) is refused with `DecisionConflict` instead of silently overwriting theirs.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forge_pipeline.errors import ForgeError

STATUSES = ("approved", "rejected", "edited", "skipped")


class DecisionError(ForgeError, ValueError):
    """A decision (or a line of a decisions file) is invalid; the message says where and why."""


class DecisionConflict(DecisionError):
    """Someone else changed the example's decision since this session read it."""


# How long a write waits for another process's transaction. Decisions commit in milliseconds, so waiting
# longer only means something holds the database for good: say so instead of hanging.
BUSY_TIMEOUT_S = 2.0
UNSET = object()  # `expected` not given: no check against a concurrent change


@dataclass(frozen=True)
class Decision:
    example_id: str
    status: str
    reason: str | None = None
    messages: list[dict] | None = None  # the edited conversation (status "edited")
    original_messages: list[dict] | None = None  # kept so an edit never loses what was there
    reviewer: str | None = None
    decided_at: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    example_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('approved', 'rejected', 'edited', 'skipped')),
    reason TEXT,
    messages TEXT,
    original_messages TEXT,
    reviewer TEXT,
    decided_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    example_id TEXT NOT NULL,
    previous TEXT,            -- the decision before this change as JSON, NULL when there was none
    current TEXT,             -- the decision after this change as JSON, NULL when it was removed
    changed_at TEXT NOT NULL
);
"""
# Added after the first release: databases created before get the column (NULL: belongs to no live session).
_HISTORY_SESSION = "ALTER TABLE history ADD COLUMN session TEXT"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _validate(decision: Decision, where: str) -> None:
    from forge_pipeline.curate.validate import message_problems

    if not decision.example_id or not isinstance(decision.example_id, str):
        raise DecisionError(f"{where}: field example_id is missing or not a string")
    if decision.status not in STATUSES:
        raise DecisionError(f"{where}: field status is {decision.status!r}, expected one of {', '.join(STATUSES)}")
    if decision.status == "rejected" and not (decision.reason or "").strip():
        raise DecisionError(f"{where}: field reason is required when rejecting (say why)")
    if decision.status == "edited":
        if not decision.messages:
            raise DecisionError(f"{where}: field messages is required for an edit")
        problems = message_problems(decision.messages)
        if problems:
            raise DecisionError(f"{where}: edited messages are invalid: " + "; ".join(problems))


def _conflict(example_id: str, now: Decision | None, undoing: bool = False) -> str:
    state = f"{now.status} by {now.reviewer or 'someone'} at {now.decided_at}" if now else "reset to unreviewed"
    what = "not undone" if undoing else "your decision was not saved"
    return f"{example_id} was changed by another session meanwhile (now {state}); {what}"


class DecisionStore:
    """The curation database (one SQLite file in WAL mode so a review and a Dagster run can share it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.session = uuid.uuid4().hex  # undo() touches only what this store changed
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            with self._errors_named():
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(history)")}
                if "session" not in columns:
                    self._db.execute(_HISTORY_SESSION)
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _errors_named(self):
        """sqlite3's errors say neither which file nor what to do; these do."""
        try:
            yield
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise DecisionError(
                    f"{self.path}: the curation database is locked by another process (a `forge curate` in the "
                    f"middle of a write, or a Dagster run reading it) for over {BUSY_TIMEOUT_S:.0f} s; try again "
                    "when it has finished"
                ) from None
            raise DecisionError(f"{self.path}: cannot use the curation database ({err})") from None
        except sqlite3.DatabaseError as err:
            raise DecisionError(
                f"{self.path}: not a readable curation database ({err}); move it aside to start afresh, and "
                "re-import decisions from an earlier `forge curate --export` file with --import"
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DecisionStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------------
    @staticmethod
    def _row_to_decision(row) -> Decision:
        example_id, status, reason, messages, original, reviewer, decided_at = row
        return Decision(
            example_id,
            status,
            reason,
            json.loads(messages) if messages else None,
            json.loads(original) if original else None,
            reviewer,
            decided_at,
        )

    def get(self, example_id: str) -> Decision | None:
        with self._errors_named():
            row = self._db.execute(
                "SELECT example_id, status, reason, messages, original_messages, reviewer, decided_at "
                "FROM decisions WHERE example_id = ?",
                (example_id,),
            ).fetchone()
        return self._row_to_decision(row) if row else None

    def all(self) -> dict[str, Decision]:
        with self._errors_named():
            rows = self._db.execute(
                "SELECT example_id, status, reason, messages, original_messages, reviewer, decided_at "
                "FROM decisions ORDER BY decided_at, example_id"
            ).fetchall()
        return {row[0]: self._row_to_decision(row) for row in rows}

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUSES}
        with self._errors_named():
            for status, n in self._db.execute("SELECT status, COUNT(*) FROM decisions GROUP BY status"):
                counts[status] = n
        return counts

    def history_length(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM history").fetchone()[0]

    # -- writing -----------------------------------------------------------------------------------
    def _write(self, decision: Decision | None, example_id: str) -> None:
        if decision is None:
            self._db.execute("DELETE FROM decisions WHERE example_id = ?", (example_id,))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    decision.example_id,
                    decision.status,
                    decision.reason,
                    json.dumps(decision.messages, ensure_ascii=False) if decision.messages else None,
                    json.dumps(decision.original_messages, ensure_ascii=False) if decision.original_messages else None,
                    decision.reviewer,
                    decision.decided_at or _now(),
                ),
            )

    @contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE: the previous state is read under the write lock, so history and checks stay exact."""
        with self._errors_named():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _put(self, decision: Decision | None, example_id: str, expected: object = UNSET) -> None:
        """Replace the decision for example_id (None removes it) and record the change in history.

        `expected`: the decision this session saw (None: none); a different current one raises DecisionConflict."""
        with self._transaction():
            previous = self.get(example_id)
            if expected is not UNSET and previous != expected:
                raise DecisionConflict(_conflict(example_id, previous))
            self._write(decision, example_id)
            self._db.execute(
                "INSERT INTO history (example_id, previous, current, changed_at, session) VALUES (?, ?, ?, ?, ?)",
                (
                    example_id,
                    json.dumps(previous.to_json()) if previous else None,
                    json.dumps(decision.to_json()) if decision else None,
                    _now(),
                    self.session,
                ),
            )

    def decide(
        self,
        example_id: str,
        status: str,
        *,
        reason: str | None = None,
        messages: list[dict] | None = None,
        original_messages: list[dict] | None = None,
        reviewer: str | None = None,
        expected: object = UNSET,
    ) -> Decision:
        """Store a decision; with `expected` (the decision shown to the reviewer, or None), only when nobody
        changed it since (DecisionConflict otherwise)."""
        decision = Decision(example_id, status, reason, messages, original_messages, reviewer, _now())
        _validate(decision, f"decision for {example_id}")
        self._put(decision, example_id, expected)
        return decision

    def undo(self) -> str | None:
        """Revert this session's most recent change; returns the example_id it touched (None when nothing to
        undo). Other sessions' changes are never undone: when one changed the example since, DecisionConflict."""
        with self._transaction():
            row = self._db.execute(
                "SELECT seq, example_id, previous, current FROM history WHERE session = ? ORDER BY seq DESC LIMIT 1",
                (self.session,),
            ).fetchone()
            if row is None:
                return None
            seq, example_id, previous, current = row
            now = self.get(example_id)
            if (now.to_json() if now else None) != (json.loads(current) if current else None):
                raise DecisionConflict(_conflict(example_id, now, undoing=True))
            self._write(Decision(**json.loads(previous)) if previous else None, example_id)
            # The undone change leaves history, so a second undo steps further back.
            self._db.execute("DELETE FROM history WHERE seq = ?", (seq,))
        return example_id

    # -- JSONL import/export -------------------------------------------------------------------------
    def export_jsonl(self, target: Path) -> int:
        from forge_pipeline.atomic import write_text_atomic

        decisions = self.all().values()
        write_text_atomic(Path(target), "".join(json.dumps(d.to_json(), ensure_ascii=False) + "\n" for d in decisions))
        return len(decisions)

    def import_jsonl(self, source: Path) -> int:
        """Import decisions (later lines win); every line is checked first so a bad file changes nothing."""
        source = Path(source)
        parsed: list[Decision] = []
        fields = set(Decision.__dataclass_fields__)
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                payload = json.loads(line)
            except json.JSONDecodeError as err:
                raise DecisionError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(payload, dict):
                raise DecisionError(f"{where}: expected a JSON object")
            unknown = set(payload) - fields
            if unknown:
                raise DecisionError(f"{where}: unknown field(s) {sorted(unknown)}")
            values: dict[str, Any] = {k: payload.get(k) for k in fields}  # _validate checks each type next
            decision = Decision(**values)
            _validate(decision, where)
            parsed.append(decision)
        for decision in parsed:
            self._put(decision, decision.example_id)
        return len(parsed)

    def approve_all(self, example_ids: Iterable[str], reviewer: str | None = None, *, overwrite: bool = False) -> int:
        """Approve many at once; existing decisions are kept unless overwrite (a bulk action never erases a rejection)."""
        existing = self.all()
        n = 0
        for example_id in example_ids:
            if not overwrite and example_id in existing and existing[example_id].status != "skipped":
                continue
            self.decide(example_id, "approved", reviewer=reviewer)
            n += 1
        return n
