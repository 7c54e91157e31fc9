"""EmbeddingIndexVersion: what the `embedding_index` asset hands on (tables/embedding_index.json): the index
version's meta.json (embed/index.py) and its folder. The fields named here are the ones read after it; the
rest of meta.json (build report, metric, chunk settings) travels along (`extra="allow"`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class EmbeddingIndexVersion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    version_id: str
    dataset_version: str
    path: Path  # embeddings/<version_id>/: chunks.parquet, index.faiss, meta.json
    backend: str
    model: str
    dimension: int
    index_type: str
    by_source: dict[str, int] = {}
