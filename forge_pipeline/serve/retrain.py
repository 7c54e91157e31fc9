"""When to re-run the pipeline: scan the interaction folders for records added since the last look.

Dagster-free so the sensor is a few lines. The state (a sensor cursor) remembers, per file, how many bytes
were already counted: interaction files are append-only, so only the bytes past that offset are new. A file
that shrank was rewritten and is counted again from the start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ScanState:
    offsets: dict[str, int] = field(default_factory=dict)
    since_retrain: int = 0  # new records seen since the last retrain request

    def to_cursor(self) -> str:
        return json.dumps({"offsets": self.offsets, "since_retrain": self.since_retrain}, sort_keys=True)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> ScanState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(dict(data.get("offsets", {})), int(data.get("since_retrain", 0)))


@dataclass
class ScanResult:
    new_records: int
    changed_files: list[str]
    state: ScanState
    retrain: bool


def _count_lines(path: Path, start: int, end: int) -> int:
    with open(path, "rb") as handle:
        handle.seek(start)
        chunk = handle.read(end - start)
    # A line still being written (no newline yet) is counted when it is complete, by the next scan.
    return sum(1 for line in chunk.split(b"\n")[:-1] if line.strip())


def scan(dirs: list[Path], state: ScanState, retrain_threshold: int) -> ScanResult:
    offsets = dict(state.offsets)
    new_records, changed = 0, []
    for directory in dirs:
        for path in sorted(Path(directory).glob("*.jsonl")):
            key = str(path.resolve())
            size = path.stat().st_size
            start = offsets.get(key, 0)
            if size < start:
                start = 0
            if size == start:
                continue
            with open(path, "rb") as handle:
                handle.seek(start)
                complete = handle.read(size - start).rfind(b"\n") + 1
            if complete == 0:
                continue
            counted = _count_lines(path, start, start + complete)
            offsets[key] = start + complete
            if counted:
                new_records += counted
                changed.append(key)
    since = state.since_retrain + new_records
    retrain = since >= retrain_threshold
    return ScanResult(new_records, changed, ScanState(offsets, 0 if retrain else since), retrain)


def changed_since(dirs: list[Path], timestamp: float) -> list[str]:
    """Files under `dirs` modified after `timestamp` (for the nightly schedule's skip decision)."""
    return [
        str(p)
        for d in dirs
        if Path(d).exists()
        for p in Path(d).rglob("*")
        if p.is_file() and p.stat().st_mtime > timestamp
    ]
