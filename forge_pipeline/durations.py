"""One way to write a duration for people, used by training progress lines and time estimates alike."""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """`45s`, `1m20s`, `2h05m`; `unknown` when there is no figure."""
    if seconds is None:
        return "unknown"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
