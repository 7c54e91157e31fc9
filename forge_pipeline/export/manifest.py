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
Writes go through a temp file + rename, under a file lock, so a reader never sees a partial manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from forge_pipeline.atomic import locked, write_json_atomic

SCHEMA_VERSION = 1
FILE_ROLES = ("base_gguf", "adapter_gguf", "merged_gguf")


class ManifestError(ValueError):
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
        raise ManifestError(f"{manifest_path}: schema_version {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}")
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


def next_version_id(manifest: dict) -> str:
    numbers = [int(v[1:]) for v in manifest["versions"] if v.startswith("v") and v[1:].isdigit()]
    return f"v{(max(numbers) + 1 if numbers else 1):04d}"


def publish_version(manifest_path: Path, entry: dict, promote: bool) -> dict:
    """Add a version (its files already written and hashed) and, if promoted, make it current."""
    manifest_path = Path(manifest_path)
    with locked(manifest_path):
        manifest = read_manifest(manifest_path)
        version = entry.get("version") or next_version_id(manifest)
        entry = {**entry, "version": version, "promoted": promote,
                 "created_at": entry.get("created_at") or datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
        manifest["versions"][version] = entry
        if promote:
            verify_version(manifest, version, manifest_path)
            manifest["current"] = version
            manifest["history"].append(version)
        write_json_atomic(manifest_path, manifest)
        return manifest


def rollback(manifest_path: Path, version: str | None = None) -> dict:
    """Re-point `current` at `version` (default: the previously promoted one), after verifying its files."""
    manifest_path = Path(manifest_path)
    with locked(manifest_path):
        manifest = read_manifest(manifest_path)
        if version is None:
            earlier = [v for v in manifest["history"] if v != manifest["current"]]
            if not earlier:
                raise ManifestError(f"{manifest_path}: no earlier promoted version to roll back to")
            version = earlier[-1]
        verify_version(manifest, version, manifest_path)
        manifest["current"] = version
        manifest["versions"][version]["promoted"] = True
        manifest["history"].append(version)
        write_json_atomic(manifest_path, manifest)
        return manifest
