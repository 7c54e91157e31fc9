"""A person's review of the PII scrub: values accepted (a word, kept) or rejected (always replaced).

Stored in `<data_root>/pii/review.json` (written atomically, under a lock) and fed to the scrubber through
the settings it already reads: when settings are loaded, accepted values join `prepare.scrub.allow_list` and
rejected ones `prepare.scrub.deny_list` (`apply_review`). So the scrub, the `no_residual_pii` check,
`forge check-inputs` and every benchmark see the same lists, and a value set in forge.yaml or
FORGE_PREPARE__SCRUB__ALLOW_LIST / FORGE_PREPARE__SCRUB__DENY_LIST works the same way as a reviewed one.
When a value is on both lists the deny list wins: replacing a word costs a word, keeping a name leaks it.

The file holds the values themselves (a deny list is a list of names by nature), like forge.yaml's lists; it
is created readable by its owner only. Each dataset version records the hash and counts of the lists that
shaped it (`lists_record`, in the catalog entry's `pii_lists`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from forge_pipeline.errors import ForgeError

REVIEW_FILE = Path("pii") / "review.json"
FORMAT_VERSION = 1


class ReviewError(ForgeError, ValueError):
    """The review file or a decisions file is unusable; the message names the file, line and field."""


def review_path(data_root: Path) -> Path:
    return Path(data_root) / REVIEW_FILE


def _key(value: str) -> str:
    return " ".join(value.split()).casefold()


@dataclass
class ReviewDecisions:
    """Decisions keyed by the value in lower case with single spaces; each keeps the value as typed."""

    accepted: dict[str, dict] = field(default_factory=dict)
    rejected: dict[str, dict] = field(default_factory=dict)

    def decide(self, value: str, accept: bool, reviewer: str | None = None) -> bool:
        """Record one decision (the latest wins); True when it changed anything."""
        key = _key(value)
        if not key:
            raise ReviewError("an empty value cannot be accepted or rejected")
        if "***" in value:  # what a listing shows is masked: the decision needs the value itself
            raise ReviewError(
                f"{value!r} is a masked value; pass the value itself, or its [id] from `forge pii review --list`"
            )
        target, other = (self.accepted, self.rejected) if accept else (self.rejected, self.accepted)
        if key in target and key not in other:
            return False
        other.pop(key, None)
        target[key] = {
            "value": " ".join(value.split()),
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "reviewer": reviewer,
        }
        return True

    def forget(self, value: str) -> bool:
        key = _key(value)
        return self.accepted.pop(key, None) is not None or self.rejected.pop(key, None) is not None

    def to_json(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "accepted": sorted(self.accepted.values(), key=lambda d: _key(d["value"])),
            "rejected": sorted(self.rejected.values(), key=lambda d: _key(d["value"])),
        }


def load_decisions(path: Path) -> ReviewDecisions:
    """The stored decisions (none when the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return ReviewDecisions()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReviewError(
            f"{path}: cannot read the PII review decisions ({err}); fix or delete the file "
            "(then review again with `forge pii review`)"
        ) from None
    if not isinstance(data, dict):
        raise ReviewError(f"{path}: expected a JSON object with `accepted` and `rejected` lists")
    decisions = ReviewDecisions()
    for name, target in (("accepted", decisions.accepted), ("rejected", decisions.rejected)):
        entries = data.get(name, [])
        if not isinstance(entries, list):
            raise ReviewError(f"{path}: field `{name}` must be a list of {{value, decided_at, reviewer}} objects")
        for i, entry in enumerate(entries):
            value = entry.get("value") if isinstance(entry, dict) else None
            if not isinstance(value, str) or not value.strip():
                raise ReviewError(f"{path}: `{name}[{i}].value` must be a non-empty string")
            target[_key(value)] = dict(entry)
    return decisions


def save_decisions(path: Path, decisions: ReviewDecisions) -> Path:
    from forge_pipeline.atomic import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(decisions.to_json(), indent=2, ensure_ascii=False) + "\n")
    os.chmod(path, 0o600)  # the person's own names: not for other accounts on the machine
    return path


def update_decisions(
    path: Path,
    accept: Sequence[str] = (),
    reject: Sequence[str] = (),
    forget: Sequence[str] = (),
    reviewer: str | None = None,
) -> tuple[ReviewDecisions, int]:
    """Apply accept/reject/forget to the stored decisions under a lock (two terminals never lose each other's
    decisions) and save them; returns the decisions and how many changed."""
    from forge_pipeline.atomic import locked

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        decisions = load_decisions(path)
        changed = sum(decisions.forget(v) for v in forget)
        changed += sum(decisions.decide(v, True, reviewer) for v in accept)
        changed += sum(decisions.decide(v, False, reviewer) for v in reject)
        if changed:
            save_decisions(path, decisions)
    return decisions, changed


def read_decisions_file(path: Path) -> tuple[list[str], list[str]]:
    """(accepted, rejected) from a text file of `accept VALUE` / `reject VALUE` lines (# comments and blank
    lines ignored), the format `forge pii review --list --as-file` writes."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ReviewError(f"{path}: cannot read the decisions file ({err})") from None
    accepted: list[str] = []
    rejected: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, value = line.partition(" ")
        if verb not in ("accept", "reject") or not value.strip():
            raise ReviewError(f"{path}:{number}: expected `accept VALUE` or `reject VALUE`, got {line[:60]!r}")
        (accepted if verb == "accept" else rejected).append(value.strip())
    return accepted, rejected


def apply_review(settings):
    """`settings` with the stored decisions added to prepare.scrub's allow and deny lists (see module doc)."""
    decisions = load_decisions(review_path(settings.paths.root))
    if not decisions.accepted and not decisions.rejected:
        return settings
    scrub = settings.prepare.scrub
    deny = list(dict.fromkeys([*scrub.deny_list, *(d["value"] for d in decisions.rejected.values())]))
    denied = {_key(v) for v in deny}
    allow = [
        v
        for v in dict.fromkeys([*scrub.allow_list, *(d["value"] for d in decisions.accepted.values())])
        if _key(v) not in denied
    ]
    settings.prepare = settings.prepare.model_copy(
        update={"scrub": scrub.model_copy(update={"allow_list": allow, "deny_list": deny})}
    )
    return settings


def lists_record(settings) -> dict:
    """What a dataset version records about the lists that shaped it: counts and a hash, never the values."""
    scrub = settings.prepare.scrub
    decisions = load_decisions(review_path(settings.paths.root))
    canonical = json.dumps(
        {"allow_list": sorted(map(_key, scrub.allow_list)), "deny_list": sorted(map(_key, scrub.deny_list))}
    )
    return {
        "sha256": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        "allow_list": len(scrub.allow_list),
        "deny_list": len(scrub.deny_list),
        "reviewed_accepted": len(decisions.accepted),
        "reviewed_rejected": len(decisions.rejected),
        "review_file": REVIEW_FILE.as_posix(),
    }
