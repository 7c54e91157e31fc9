"""The prepare stage's per-record steps on Ray Data: presidio analysis and sentence embedding as `map_batches`
over actor pools whose actors load the analyzer / encoder once and keep it.

Only the per-text work moves: the detection and embedding caches, corpus-wide rules (name propagation,
merging), placeholder numbering and FAISS dedup stay in the calling process, on the same Parquet tables, so
outputs and incremental behaviour do not depend on the engine.
"""

from __future__ import annotations

import json

import numpy as np

from forge_pipeline.prepare.config import ScrubSettings
from forge_pipeline.prepare.embeddings import Embedder
from forge_pipeline.runtime.config import RuntimeSettings
from forge_pipeline.runtime.ray_cluster import connect


class _AnalyzerActor:
    """One presidio AnalyzerEngine per actor (spaCy + recognizers load once, then serve every batch)."""

    def __init__(self, spacy_model: str, phone_regions: list[str], address_patterns: bool):
        from forge_pipeline.prepare.pii import build_analyzer

        build_with = ScrubSettings(phone_regions=phone_regions, address_patterns=address_patterns)
        self.analyzer = build_analyzer(spacy_model, build_with)

    def __call__(self, batch: dict, scrub: dict, fast: bool) -> dict:
        from forge_pipeline.prepare.pii.detection import _analyze_raw

        # n_process=1: the actor pool is the parallelism; spaCy forking inside an actor would oversubscribe.
        settings = ScrubSettings.model_validate({**scrub, "n_process": 1})
        found = _analyze_raw(self.analyzer, [str(t) for t in batch["text"]], settings, fast)
        # JSON keeps each detection exact (floats round-trip) without a nested Arrow schema per batch.
        return {
            "row": batch["row"],
            "detections": np.array(
                [json.dumps([[d.entity_type, d.start, d.end, d.score] for d in dets]) for dets in found]
            ),
        }


class _EncoderActor:
    """One sentence-transformers model per actor."""

    def __init__(self, model_path: str, batch_size: int):
        self.embedder = Embedder(model_path, batch_size)

    def __call__(self, batch: dict) -> dict:
        return {"row": batch["row"], "vector": self.embedder.encode([str(t) for t in batch["text"]])}


def _map_texts(
    runtime: RuntimeSettings, texts: list[str], actor, constructor_kwargs: dict, **call_kwargs
) -> list[dict]:
    """Rows {row, ...} for texts[row], in input order, computed by an actor pool of runtime.ray_workers."""
    connect(runtime)
    import ray.data

    dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
    mapped = dataset.map_batches(
        actor,
        fn_constructor_kwargs=constructor_kwargs,
        fn_kwargs=call_kwargs or None,
        batch_size=runtime.ray_batch_size,
        compute=ray.data.ActorPoolStrategy(size=runtime.ray_workers),
        num_cpus=runtime.ray_worker_cpus,
        batch_format="numpy",
    )
    return sorted(mapped.take_all(), key=lambda r: int(r["row"]))


class RayPiiAnalyzer:
    """Takes the place of presidio's AnalyzerEngine in forge_pipeline.prepare.pii: `analyze_raw` is the raw
    presidio pass (`_analyze_raw`) run on Ray actors; everything after it runs where the caller is."""

    def __init__(self, runtime: RuntimeSettings, spacy_model: str, phone_regions: list[str], address_patterns: bool):
        self.runtime = runtime
        self.build_args = {
            "spacy_model": spacy_model,
            "phone_regions": list(phone_regions),
            "address_patterns": address_patterns,
        }

    def analyze_raw(self, texts: list[str], scrub: ScrubSettings, fast: bool) -> list:
        from forge_pipeline.prepare.pii.detection import Detection

        if not texts:
            return []
        rows = _map_texts(
            self.runtime, texts, _AnalyzerActor, self.build_args, scrub=scrub.model_dump(mode="json"), fast=fast
        )
        return [[Detection(*d) for d in json.loads(str(r["detections"]))] for r in rows]


class RayEmbedder(Embedder):
    """An Embedder whose `encode` runs on a Ray actor pool; name, model_path and texts_encoded (the caches key
    on them) are the local Embedder's."""

    def __init__(self, runtime: RuntimeSettings, model_path: str | None = None, batch_size: int = 64):
        super().__init__(model_path, batch_size)
        self.runtime = runtime

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return super().encode(texts)
        rows = _map_texts(
            self.runtime, texts, _EncoderActor, {"model_path": self.model_path, "batch_size": self.batch_size}
        )
        self.texts_encoded += len(texts)
        return np.stack([np.asarray(r["vector"], dtype=np.float32) for r in rows])
