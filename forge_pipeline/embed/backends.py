"""Two embedding backends behind one interface, chosen by `embed.backend`.

Every backend has `model_path` (the identity the shared embedding cache is keyed by, the same key
`prepare.dedup` uses), `name`, `dimension`, `texts_encoded` (how many texts it really encoded: tests and
asset metadata count it) and `encode(texts)` returning L2-normalised float32 rows, so inner product is
cosine similarity for every backend.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forge_pipeline.embed.config import EmbedSettings
from forge_pipeline.errors import ForgeError
from forge_pipeline.prepare.embeddings import Embedder

if TYPE_CHECKING:  # llama.cpp is loaded with the first GGUF model
    from llama_cpp import Llama

SMALL_BATCH = 8  # texts up to which encoding runs on one thread (queries, not index builds)


class EmbedBackendError(ForgeError, RuntimeError):
    """The configured backend cannot be built (missing file, unset path)."""


class SentenceTransformerBackend(Embedder):
    """sentence-transformers (default: the packaged all-MiniLM-L6-v2); the dedup step's own Embedder."""

    backend = "sentence-transformers"

    def __init__(self, model_path: str | None = None, batch_size: int = 64):
        super().__init__(model_path, batch_size)
        # torch releases the GIL while encoding; one lock keeps server threads from sharing a batch.
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            if len(texts) > SMALL_BATCH:
                return super().encode(texts)
            # A query or two: torch's second thread only adds barrier waits. On the busy 2-core machine one
            # search query took 723 ms p50 with 2 threads and 84 ms with 1 (benchmarks/README.md).
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return super().encode(texts)
            finally:
                torch.set_num_threads(threads)


class GgufBackend:
    """A GGUF model through llama-cpp-python with `embedding=True` and mean pooling: the runtime that serves."""

    backend = "gguf"

    def __init__(self, model_path: Path, n_ctx: int = 512, batch_size: int = 64):
        path = Path(model_path)
        if not path.is_file():
            raise EmbedBackendError(f"embed.gguf_model: {path} is not a file; point it at a .gguf model")
        self.model_path = str(path.resolve())
        self.n_ctx = n_ctx
        self.batch_size = batch_size
        self.texts_encoded = 0
        self._llm: Llama | None = None
        self._lock = threading.Lock()  # a llama.cpp context is not thread-safe

    @property
    def name(self) -> str:
        return Path(self.model_path).name

    @property
    def llm(self) -> Llama:
        if self._llm is None:
            from llama_cpp import LLAMA_POOLING_TYPE_MEAN, Llama

            self._llm = Llama(
                model_path=self.model_path,
                embedding=True,
                pooling_type=LLAMA_POOLING_TYPE_MEAN,
                n_ctx=self.n_ctx,
                n_batch=self.n_ctx,
                n_ubatch=self.n_ctx,
                verbose=False,
            )
        return self._llm

    @property
    def dimension(self) -> int:
        return int(self.llm.n_embd())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            rows = []
            for start in range(0, len(texts), self.batch_size):
                rows.extend(self.llm.embed(texts[start : start + self.batch_size], normalize=False, truncate=True))
            self.texts_encoded += len(texts)
        return normalize(np.asarray(rows, dtype=np.float32))

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def build_backend(settings: EmbedSettings, dedup_model: str | None = None):
    """A new backend for `settings` (`dedup_model`: prepare.dedup.embedding_model, the default model)."""
    if settings.backend == "gguf":
        if settings.gguf_model is None:
            raise EmbedBackendError(
                "embed.backend is gguf but embed.gguf_model is not set; set FORGE_EMBED__GGUF_MODEL=/path/to/model.gguf"
            )
        return GgufBackend(settings.gguf_model, settings.gguf_n_ctx, settings.batch_size)
    return SentenceTransformerBackend(settings.model or dedup_model, settings.batch_size)


@lru_cache(maxsize=4)
def _shared(settings_json: str, dedup_model: str | None):
    return build_backend(EmbedSettings.model_validate_json(settings_json), dedup_model)


def shared_backend(settings: EmbedSettings, dedup_model: str | None = None):
    """One backend per configuration per process: a model loads once for the asset, the CLI and the server."""
    return _shared(settings.model_dump_json(), dedup_model)
