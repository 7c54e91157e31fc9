"""DatasetVersion: what the catalog hands to training, evaluation and the embedding index (the `dataset_version`
asset's value, stored as `tables/dataset_version.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class DatasetVersion(BaseModel):
    """One catalog entry (as in catalog.json, see catalog/versions.py) and `version`, its id once more (the name
    readers used before `version_id`). Validated where the catalog writes it and where a stage reads it, so a
    missing field is reported by name instead of as a KeyError deep in a stage."""

    model_config = ConfigDict(frozen=True)

    version_id: str
    path: Path  # the version's folder: train.jsonl, validation.jsonl, dataset/ (absolute)
    version: str = ""
    created_at: str | None = None
    content_hash: str | None = None
    counts: dict[str, Any] = {}
    split: dict[str, Any] = {}
    token_stats: dict[str, Any] = {}
    quality: dict[str, Any] = {}
    parent: str | None = None
    sources: dict[str, Any] = {}
    pii_lists: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _ids(cls, data: Any) -> Any:
        # Older tables (and hand-written ones) name the version only by `version`, or only by its folder.
        if isinstance(data, dict) and data.get("path"):
            version_id = data.get("version_id") or data.get("version") or Path(data["path"]).name
            data = {**data, "version_id": version_id, "version": data.get("version") or version_id}
        return data

    @property
    def train_file(self) -> Path:
        return self.path / "train.jsonl"

    @property
    def validation_file(self) -> Path:
        return self.path / "validation.jsonl"
