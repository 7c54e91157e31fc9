"""The index on disk, one folder per dataset version:

    <data_root>/embeddings/<dataset_version_id>/
        chunks.parquet   ids, provenance, text and the vector of every chunk (row i = FAISS row i)
        index.faiss      the FAISS index over those vectors
        meta.json        model name and path, backend, dimension, index type, chunk size, counts
    <data_root>/embeddings/versions.json   {"current": id, "versions": [meta, ...]}

A version folder is built under a temporary name and renamed into place; versions.json is rewritten
atomically after it, so a reader never sees a half-written index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from forge_pipeline.atomic import atomic_directory, locked, write_json_atomic
from forge_pipeline.errors import ForgeError

if TYPE_CHECKING:  # faiss is imported where an index is read or written
    import faiss

CHUNKS_FILE, FAISS_FILE, META_FILE, VERSIONS_FILE = "chunks.parquet", "index.faiss", "meta.json", "versions.json"
INDEX_FILES = (CHUNKS_FILE, FAISS_FILE, META_FILE)


class IndexNotFoundError(ForgeError, FileNotFoundError):
    """No index version has been built yet (or the one named is missing)."""


def index_root(data_root: Path) -> Path:
    return Path(data_root) / "embeddings"


@dataclass
class IndexVersion:
    path: Path
    meta: dict
    chunks: pl.DataFrame  # without the vector column
    vectors: np.ndarray
    faiss_index: faiss.Index


def read_versions(root: Path) -> dict:
    path = Path(root) / VERSIONS_FILE
    if not path.exists():
        return {"current": None, "versions": []}
    try:
        return json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as err:
        raise IndexNotFoundError(
            f"{path} line {err.lineno}: not valid JSON ({err.msg}); rematerialize embedding_index to rewrite it"
        ) from None


def current_version_dir(root: Path) -> Path:
    versions = read_versions(root)
    if not versions["current"]:
        raise IndexNotFoundError(
            f"{Path(root) / VERSIONS_FILE}: no embedding index yet; materialize the "
            f"embedding_index asset (or `forge demo`) first"
        )
    folder = Path(root) / versions["current"]
    if not (folder / META_FILE).exists():
        raise IndexNotFoundError(
            f"{folder}: the current embedding index version has no {META_FILE}; rematerialize embedding_index"
        )
    return folder


def write_version(
    root: Path, version_id: str, chunks: pl.DataFrame, vectors: np.ndarray, faiss_index, meta: dict
) -> Path:
    import faiss

    root = Path(root)
    target = root / version_id
    with locked(root / VERSIONS_FILE):
        with atomic_directory(target) as staging:
            dim = vectors.shape[1]
            chunks.with_columns(pl.Series("vector", vectors, dtype=pl.Array(pl.Float32, dim))).write_parquet(
                staging / CHUNKS_FILE
            )
            faiss.write_index(faiss_index, str(staging / FAISS_FILE))
            write_json_atomic(staging / META_FILE, meta)
        versions = read_versions(root)
        versions["versions"] = [v for v in versions["versions"] if v["version_id"] != version_id] + [meta]
        versions["current"] = version_id
        write_json_atomic(root / VERSIONS_FILE, versions)
    return target


def load_version(folder: Path) -> IndexVersion:
    import faiss

    folder = Path(folder)
    for name in INDEX_FILES:
        if not (folder / name).exists():
            raise IndexNotFoundError(
                f"{folder / name}: missing from the embedding index version; rematerialize embedding_index"
            )
    meta = json.loads((folder / META_FILE).read_text("utf-8"))
    table = pl.read_parquet(folder / CHUNKS_FILE)
    vectors = (
        table["vector"].to_numpy().astype(np.float32, copy=False)
        if table.height
        else np.zeros((0, meta["dimension"]), dtype=np.float32)
    )
    index = faiss.read_index(str(folder / FAISS_FILE))
    if index.ntotal != table.height:
        raise IndexNotFoundError(
            f"{folder / FAISS_FILE}: {index.ntotal} vectors but {CHUNKS_FILE} has "
            f"{table.height} rows; rematerialize embedding_index"
        )
    return IndexVersion(folder, meta, table.drop("vector"), np.ascontiguousarray(vectors), index)


def load_current(root: Path) -> IndexVersion:
    return load_version(current_version_dir(root))


def load_current_for_reuse(root: Path) -> IndexVersion | None:
    """The current version if one is readable, else None (a first build, or a broken one to replace)."""
    try:
        return load_current(root)
    except (IndexNotFoundError, OSError, ValueError, RuntimeError):
        return None
