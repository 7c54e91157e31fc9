"""Build an embedding index version from examples, embedding only what is new.

Incremental by content: a chunk whose text (sha256) is in the current index version, built with the same
model, keeps its vector; the rest go through the shared embedding cache (`prepare.embeddings`, keyed by
model path + text, the cache the dedup step fills), and only texts missing from both are encoded. A note
that is gone (or changed) from the dataset version has no chunk in the new version, so it leaves the index.
The FAISS index itself is rebuilt from the vectors each time: adding 100k vectors costs well under a
second for a flat index (benchmarks/README.md), while removing entries in place would need an id map.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from forge_pipeline.embed.chunking import chunk_messages
from forge_pipeline.embed.config import EmbedSettings
from forge_pipeline.embed.store import load_current_for_reuse, write_version
from forge_pipeline.prepare.embeddings import EmbeddingCache
from forge_pipeline.records import ColumnType, read_jsonl

CHUNK_SCHEMA: dict[str, ColumnType] = {
    "chunk_id": pl.String,  # <example_id>:<chunk_index>
    "example_id": pl.String,
    "chunk_index": pl.Int32,
    "heading": pl.String,
    "text": pl.String,
    "text_hash": pl.String,  # sha256 of text: what "changed content" means
    "source": pl.String,  # vault | conversation | interaction | import
    "source_path": pl.String,
    "conversation_id": pl.String,
    "created_at": pl.String,
}


@dataclass
class IndexReport:
    examples: int = 0
    chunks: int = 0
    texts_embedded: int = 0  # really encoded by the model in this build
    reused_from_previous: int = 0  # vectors carried over from the previous index version
    reused_from_cache: int = 0  # vectors the shared cache already had (e.g. from dedup)
    added_chunks: int = 0  # chunk texts not in the previous version
    removed_chunks: int = 0  # chunk texts of the previous version that are gone
    index_type: str = ""
    build_seconds: float = 0.0


def read_version_records(version_path: Path) -> list[dict]:
    """Every example of a catalog version (train and validation JSONL), with its provenance."""
    records = []
    for name in ("train", "validation"):
        path = Path(version_path) / f"{name}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing from dataset version {Path(version_path).name}")
        records.extend(read_jsonl(path))
    return records


def chunk_records(records: list[dict], max_chars: int) -> pl.DataFrame:
    rows = []
    for record in records:
        for chunk in chunk_messages(record["messages"] or [], max_chars):
            created = record.get("created_at")
            rows.append(
                {
                    "chunk_id": f"{record['example_id']}:{chunk.chunk_index}",
                    "example_id": record["example_id"],
                    "chunk_index": chunk.chunk_index,
                    "heading": chunk.heading,
                    "text": chunk.text,
                    "text_hash": chunk.text_hash,
                    "source": record.get("source"),
                    "source_path": record.get("source_path"),
                    "conversation_id": record.get("conversation_id"),
                    "created_at": created if created is None else str(created),
                }
            )
    return pl.DataFrame(rows, schema=CHUNK_SCHEMA) if rows else pl.DataFrame(schema=CHUNK_SCHEMA)


def choose_index_type(n: int, settings: EmbedSettings) -> str:
    if settings.index_type != "auto":
        return settings.index_type
    return "hnsw" if n >= settings.hnsw_min_chunks else "flat"


def make_faiss_index(vectors: np.ndarray, index_type: str, settings: EmbedSettings):
    import faiss

    dim = vectors.shape[1]
    if index_type == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = settings.hnsw_ef_construction
        hnsw.hnsw.efSearch = settings.hnsw_ef_search  # saved with the index, so readers search the same way
        index: faiss.Index = hnsw
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


def _vectors_for(chunks: pl.DataFrame, backend, cache_dir: Path, previous, report: IndexReport) -> np.ndarray:
    hashes = chunks["text_hash"].to_list()
    texts = chunks["text"].to_list()
    old_rows: dict[str, int] = {}
    if previous is not None and previous.meta.get("model_path") == backend.model_path:
        old_rows = {h: i for i, h in enumerate(previous.chunks["text_hash"].to_list())}
        report.removed_chunks = len(set(old_rows) - set(hashes))
    report.added_chunks = len(set(hashes) - set(old_rows))
    missing = list(dict.fromkeys(h for h in hashes if h not in old_rows))
    text_of = dict(zip(hashes, texts))
    fresh: dict[str, np.ndarray] = {}
    if missing:
        before = backend.texts_encoded
        rows = EmbeddingCache(cache_dir, backend.model_path).embed([text_of[h] for h in missing], backend)
        report.texts_embedded = backend.texts_encoded - before
        report.reused_from_cache = len(missing) - report.texts_embedded
        fresh = {h: rows[i] for i, h in enumerate(missing)}
    report.reused_from_previous = sum(1 for h in set(hashes) if h in old_rows)
    if not hashes:
        return np.zeros((0, backend.dimension), dtype=np.float32)
    return np.ascontiguousarray(
        np.stack([fresh[h] if h in fresh else previous.vectors[old_rows[h]] for h in hashes]), dtype=np.float32
    )


def build_embedding_index(
    records: list[dict], version_id: str, root: Path, backend, cache_dir: Path, settings: EmbedSettings
) -> tuple[Path, dict, IndexReport]:
    """Chunk, embed (incrementally) and index `records`; write them as index version `version_id` under
    `root` and make it current. Returns the version folder, its meta and what the build did."""
    started = time.perf_counter()
    report = IndexReport(examples=len(records))
    chunks = chunk_records(records, settings.chunk_max_chars)
    report.chunks = chunks.height
    previous = load_current_for_reuse(root)
    vectors = _vectors_for(chunks, backend, cache_dir, previous, report)
    report.index_type = choose_index_type(chunks.height, settings)
    faiss_index = make_faiss_index(vectors, report.index_type, settings)
    report.build_seconds = round(time.perf_counter() - started, 3)
    meta = {
        "version_id": version_id,
        "dataset_version": version_id,
        "created_at": datetime.now(UTC).isoformat(),
        "backend": backend.backend,
        "model": backend.name,
        "model_path": backend.model_path,
        "dimension": int(vectors.shape[1]),
        "index_type": report.index_type,
        "metric": "inner_product (cosine: vectors are L2-normalised)",
        "chunk_max_chars": settings.chunk_max_chars,
        "chunks": chunks.height,
        "examples": len(records),
        "by_source": dict(
            sorted((str(k), int(v)) for k, v in chunks.unique("example_id")["source"].value_counts().iter_rows())
        ),
        "build": asdict(report),
    }
    folder = write_version(root, version_id, chunks, vectors, faiss_index, meta)
    return folder, meta, report
