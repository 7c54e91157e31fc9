"""Settings of the embedding index (`embed` section; env vars `FORGE_EMBED__...`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from forge_pipeline.section import Section


class EmbedSettings(Section):
    """Which model embeds, how notes are chunked and which FAISS index is built."""

    backend: Literal["sentence-transformers", "gguf"] = Field(
        default="sentence-transformers",
        description="sentence-transformers (default) or gguf: a GGUF model through llama-cpp-python "
        "(embedding=True), the runtime `forge serve` uses.",
    )
    model: str | None = Field(
        default=None,
        description="sentence-transformers model directory; None uses prepare.dedup.embedding_model (itself "
        "None: the packaged all-MiniLM-L6-v2), so dedup and the index share cached vectors.",
    )
    gguf_model: Path | None = Field(
        default=None,
        description="GGUF file for backend gguf. None: the server embeds with the model it serves; building "
        "the index then needs a path.",
    )
    gguf_n_ctx: int = Field(default=512, gt=0, description="llama.cpp context of the GGUF embedder (tokens per text).")
    batch_size: int = Field(default=64, gt=0)
    chunk_max_chars: int = Field(
        default=1000,
        ge=100,
        description="Largest chunk in characters (~200-250 tokens: MiniLM reads at most 256 word pieces).",
    )
    index_type: Literal["auto", "flat", "hnsw"] = Field(
        default="auto",
        description="flat: exact inner product; hnsw: approximate, faster at scale; "
        "auto: flat up to hnsw_min_chunks chunks, hnsw above.",
    )
    # Exact search stays cheap far beyond a personal vault (100k chunks: 14 ms p50 per query, recall 1.0, the
    # FAISS add well under a second), while HNSW took 67 s to build at 100k on 2 cores and its recall depends
    # on the data (benchmarks/README.md): so HNSW only from half a million chunks, or when asked for.
    hnsw_min_chunks: int = Field(default=500_000, gt=0)
    hnsw_m: int = Field(default=32, gt=1)
    hnsw_ef_construction: int = Field(default=40, gt=0)
    hnsw_ef_search: int = Field(default=128, gt=0, description="recall@10 on MiniLM vectors: 0.95 at 64, 0.99 at 128.")
