"""The adapter manifest: the one JSON file that serving watches.

Layout (schema_version 1):

    {
      "schema_version": 1,
      "current": "v0002",            # the promoted version that serving loads (null before the first)
      "candidate": null,             # optional A/B candidate: {"version": "v0003", "traffic_share": 0.1}
      "history": ["v0001", "v0002"], # promotion order, newest last; rollback walks it back
      "versions": {
        "v0002": {
          "version": "v0002", "created_at": "...Z", "promoted": true,
          "dataset_version": "...", "mlflow_run_id": "...",
          "base_model": {"name": "...", "is_demo_model": true},
          "files": {"base_gguf": FILE, "adapter_gguf": FILE, "merged_gguf": FILE},
          "evaluation": {...}
        }
      }
    }

FILE is {"path": <relative to the manifest's folder, or absolute>, "sha256": str, "size_bytes": int}.
A version is identified by its content (`content_key`): re-publishing the same files for the same dataset
version returns the existing version instead of adding one.
Writes go through a temp file + rename, under a file lock, so a reader never sees a partial manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from forge_pipeline.atomic import locked, write_json_atomic
from forge_pipeline.errors import ForgeError

SCHEMA_VERSION = 1


class ManifestError(ForgeError, ValueError):
    """The manifest is unreadable or refers to files that are missing or do not match their sha256."""


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: Path, manifest_path: Path) -> dict:
    """A FILE entry for `path`; the path is stored relative to the manifest's folder so the data root can move."""
    path = Path(path).resolve()
    stored = os.path.relpath(path, Path(manifest_path).resolve().parent)
    return {"path": stored, "sha256": sha256_of(path), "size_bytes": path.stat().st_size}


def resolve_file(entry: dict, manifest_path: Path) -> Path:
    stored = Path(entry["path"])
    return stored if stored.is_absolute() else (Path(manifest_path).resolve().parent / stored).resolve()


def empty_manifest() -> dict:
    return {"schema_version": SCHEMA_VERSION, "current": None, "candidate": None, "history": [], "versions": {}}


def read_manifest(manifest_path: Path) -> dict:
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        return empty_manifest()
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{manifest_path}: not valid JSON ({err})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(
            f"{manifest_path}: schema_version {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}"
        )
    for key in ("current", "history", "versions"):
        if key not in manifest:
            raise ManifestError(f"{manifest_path}: missing field {key!r}")
    return manifest


def verify_version(manifest: dict, version: str, manifest_path: Path) -> dict[str, Path]:
    """Check that every file of `version` exists and matches its sha256; return the resolved paths."""
    entry = manifest["versions"].get(version)
    if entry is None:
        raise ManifestError(f"{manifest_path}: version {version!r} is not in the manifest")
    resolved = {}
    for role, file_entry in entry["files"].items():
        if file_entry is None:
            continue
        path = resolve_file(file_entry, manifest_path)
        if not path.is_file():
            raise ManifestError(f"{manifest_path}: {version} {role} points at missing file {path}")
        if path.stat().st_size != file_entry["size_bytes"] or sha256_of(path) != file_entry["sha256"]:
            raise ManifestError(f"{manifest_path}: {version} {role} file {path} does not match its sha256/size")
        resolved[role] = path
    return resolved


def version_number(version: str) -> int:
    """v0007 -> 7; anything not of the form v<digits> sorts before every numbered version (-1)."""
    return int(version[1:]) if version.startswith("v") and version[1:].isdigit() else -1


def newest_version(manifest: dict) -> str | None:
    return max(manifest["versions"], key=version_number, default=None)


def next_version_id(manifest: dict) -> str:
    newest = newest_version(manifest)
    return f"v{max(version_number(newest) if newest else 0, 0) + 1:04d}"


class Published(NamedTuple):
    manifest: dict
    version: str
    already_published: bool  # the same content was in the manifest: no version was added


def content_key(entry: dict) -> str:
    """What makes two versions the same: the sha256 of each file, the dataset version and the kind (sft/dpo).
    Evaluation, run id and timestamps are left out: they describe a version, they do not make a new one."""
    files = {role: (f or {}).get("sha256") for role, f in sorted((entry.get("files") or {}).items())}
    identity = {"files": files, "dataset_version": entry.get("dataset_version"), "kind": entry.get("kind")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _version_with_content(manifest: dict, key: str) -> str | None:
    return next((v for v, e in sorted(manifest["versions"].items()) if content_key(e) == key), None)


def publish_version(manifest_path: Path, entry: dict, promote: bool, candidate_share: float | None = None) -> Published:
    """Add a version (its files already written and hashed) and, if promoted, make it current; with
    `candidate_share`, a promoted version becomes the A/B candidate getting that share of chat requests
    instead (current when there is no current version yet).

    Idempotent by content (`content_key`): publishing files whose sha256, dataset version and kind are already in
    the manifest (a retry, a re-run of the same adapter) adds no version and returns the existing one. Its
    promotion is decided once: a version that was never promoted nor made the candidate is promoted now if
    `promote` (the gate passes on a re-run, e.g. with a looser margin) and then records this entry; a
    version promoted before keeps its state and its entry, whatever the new gate says: a stricter gate does
    not demote what is serving, and a re-run does not undo a rollback (`forge rollback <version>` does that).
    """
    manifest_path = Path(manifest_path)
    with locked(manifest_path):
        manifest = read_manifest(manifest_path)
        existing = _version_with_content(manifest, content_key(entry))
        if existing is not None:
            decided = (
                manifest["versions"][existing].get("promoted")
                or existing in manifest["history"]
                or (manifest.get("candidate") or {}).get("version") == existing
            )
            if decided or not promote:
                return Published(manifest, existing, True)
            entry = {**entry, "created_at": manifest["versions"][existing].get("created_at")}
        version = existing or entry.get("version") or next_version_id(manifest)
        as_candidate = promote and candidate_share is not None and manifest["current"] is not None
        entry = {
            **entry,
            "version": version,
            "promoted": promote and not as_candidate,
            "created_at": entry.get("created_at") or datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        manifest["versions"][version] = entry
        if as_candidate:
            verify_version(manifest, version, manifest_path)
            manifest["candidate"] = {"version": version, "traffic_share": _share(candidate_share, manifest_path)}
        elif promote:  # (with no current version a candidate would have nothing to be compared with)
            verify_version(manifest, version, manifest_path)
            manifest["current"] = version
            manifest["history"].append(version)
        write_json_atomic(manifest_path, manifest)
        return Published(manifest, version, existing is not None)


def _share(value, manifest_path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) <= 1.0:
        raise ManifestError(f"{manifest_path}: candidate traffic_share {value!r} must be a number in (0, 1]")
    return float(value)


def candidate_of(manifest: dict, manifest_path: Path) -> dict | None:
    """The A/B candidate {"version", "traffic_share"}, or None; a malformed one raises naming the field."""
    candidate = manifest.get("candidate")
    if candidate is None:
        return None
    if not isinstance(candidate, dict) or not isinstance(candidate.get("version"), str):
        raise ManifestError(
            f"{manifest_path}: field 'candidate' must be null or "
            '{"version": str, "traffic_share": float}, got ' + repr(candidate)
        )
    if candidate["version"] not in manifest["versions"]:
        raise ManifestError(f"{manifest_path}: candidate version {candidate['version']!r} is not in the manifest")
    return {"version": candidate["version"], "traffic_share": _share(candidate.get("traffic_share"), manifest_path)}


def set_candidate(manifest_path: Path, version: str | None, traffic_share: float = 0.1) -> dict:
    """Name `version` the A/B candidate with `traffic_share` of chat requests (None clears the candidate)."""
    manifest_path = Path(manifest_path)
    with locked(manifest_path):
        manifest = read_manifest(manifest_path)
        if version is None:
            manifest["candidate"] = None
        else:
            if version == manifest["current"]:
                raise ManifestError(f"{manifest_path}: {version} is already current; a candidate must differ")
            verify_version(manifest, version, manifest_path)
            manifest["candidate"] = {"version": version, "traffic_share": _share(traffic_share, manifest_path)}
        write_json_atomic(manifest_path, manifest)
        return manifest


def promote_candidate(manifest_path: Path, version: str | None = None) -> dict:
    """Make the A/B candidate current (all traffic) and clear the candidate; `version`, when given, must be it."""
    manifest_path = Path(manifest_path)
    with locked(manifest_path):
        manifest = read_manifest(manifest_path)
        candidate = candidate_of(manifest, manifest_path)
        if candidate is None:
            raise ManifestError(f"{manifest_path}: no A/B candidate to promote (field 'candidate' is empty)")
        if version is not None and version != candidate["version"]:
            raise ManifestError(f"{manifest_path}: the candidate is {candidate['version']}, not {version}")
        verify_version(manifest, candidate["version"], manifest_path)
        manifest["current"] = candidate["version"]
        manifest["versions"][candidate["version"]]["promoted"] = True
        manifest["history"].append(candidate["version"])
        manifest["candidate"] = None
        write_json_atomic(manifest_path, manifest)
        return manifest


def rollback(manifest_path: Path, version: str | None = None) -> dict:
    """Re-point `current` at `version`, after verifying its files.

    Without `version`, walk back: the current version leaves `history` and the one promoted before it becomes
    current, so rolling back twice goes two promotions back (not forth between the last two). A named version
    is a new promotion and is appended to `history`."""
    manifest_path = Path(manifest_path)
    with locked(manifest_path):
        manifest = read_manifest(manifest_path)
        history = manifest["history"]
        if version is None:
            earlier = list(history)
            while earlier and earlier[-1] == manifest["current"]:
                earlier.pop()
            if not earlier:
                raise ManifestError(
                    f"{manifest_path}: no earlier promoted version to roll back to (history: {history or 'empty'})"
                )
            version, history = earlier[-1], earlier
        else:
            history = [*history, version]
        verify_version(manifest, version, manifest_path)
        manifest["current"] = version
        manifest["versions"][version]["promoted"] = True
        manifest["history"] = history
        write_json_atomic(manifest_path, manifest)
        return manifest
