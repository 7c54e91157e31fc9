"""Top-k notes/interactions for a query: nearest chunks in the FAISS index, best chunk per example."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from forge_pipeline.embed.store import META_FILE, IndexVersion, current_version_dir, load_version
from forge_pipeline.errors import ForgeError

OVERFETCH = 4  # chunks fetched per wanted result, since several chunks of one note may rank first
# FAISS spreads even one query over OpenMP threads; on a busy 2-core machine the threads' barriers cost
# 30x (10k flat: 64 ms p50 with 2 threads vs 2 ms with 1, benchmarks/README.md), so one query uses one thread.
# OpenMP's thread count is process-global: the lock keeps concurrent searches from restoring it wrongly.
_SINGLE_THREAD = threading.Lock()


class ModelMismatchError(ForgeError, ValueError):
    """The query would be embedded by another model than the index was built with."""


class IndexReader:
    """Keeps the current index version in memory and reloads it when a new version becomes current."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._loaded: tuple[tuple, IndexVersion] | None = None
        self._lock = threading.Lock()

    def current(self) -> IndexVersion:
        folder = current_version_dir(self.root)
        stat = (folder / META_FILE).stat()
        stamp = (str(folder), stat.st_mtime_ns)
        with self._lock:
            if self._loaded is None or self._loaded[0] != stamp:
                self._loaded = (stamp, load_version(folder))
            return self._loaded[1]


def check_same_model(version: IndexVersion, backend) -> None:
    if version.meta["model_path"] != backend.model_path:
        raise ModelMismatchError(
            f"{version.path / META_FILE}: the index was built with {version.meta['model']} "
            f"({version.meta['model_path']}, dimension {version.meta['dimension']}) but the configured embed "
            f"backend is {backend.name} ({backend.model_path}); rematerialize embedding_index with this model"
        )


def _search_one_thread(index, query_vector: np.ndarray, fetch: int):
    import faiss

    with _SINGLE_THREAD:
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return index.search(query_vector, fetch)
        finally:
            faiss.omp_set_num_threads(threads)


def search(version: IndexVersion, backend, query: str, k: int = 5, source: str | None = None) -> list[dict]:
    """The `k` best examples for `query`, each with its best chunk, cosine score and provenance."""
    check_same_model(version, backend)
    total = version.chunks.height
    if total == 0 or k <= 0:
        return []
    query_vector = np.ascontiguousarray(backend.encode([query]), dtype=np.float32)
    fetch = min(total, k * OVERFETCH)
    while True:
        results = _best_per_example(version, query_vector, fetch, k, source)
        # Many chunks of a few notes, or a source filter, can leave fewer than k: look further, up to all.
        if len(results) == k or fetch == total:
            return results
        fetch = min(total, fetch * 4)


def _best_per_example(
    version: IndexVersion, query_vector: np.ndarray, fetch: int, k: int, source: str | None
) -> list[dict]:
    scores, rows = _search_one_thread(version.faiss_index, query_vector, fetch)
    results: list[dict] = []
    seen: set[str] = set()
    for score, row in zip(scores[0].tolist(), rows[0].tolist()):
        if row < 0:
            continue
        chunk = version.chunks.row(row, named=True)
        if chunk["example_id"] in seen or (source is not None and chunk["source"] != source):
            continue
        seen.add(chunk["example_id"])
        results.append({"rank": len(results) + 1, "score": round(float(score), 4), **chunk})
        if len(results) == k:
            break
    return results
