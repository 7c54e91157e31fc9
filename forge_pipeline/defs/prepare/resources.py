"""Heavy prepare objects (presidio analyzer, sentence encoder) as resources, built once per process, lazily.
With `runtime.engine: ray` they are Ray-backed stand-ins (forge_pipeline.runtime.ray_prepare) instead."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg

from forge_pipeline.prepare.config import DedupSettings, ScrubSettings
from forge_pipeline.runtime.config import RuntimeSettings


@lru_cache(maxsize=4)
def _analyzer(spacy_model: str, phone_regions: tuple[str, ...], address_patterns: bool):
    from forge_pipeline.prepare.pii import build_analyzer

    return build_analyzer(
        spacy_model, ScrubSettings(phone_regions=list(phone_regions), address_patterns=address_patterns)
    )


@lru_cache(maxsize=4)
def _embedder(model_path: str | None, batch_size: int):
    from forge_pipeline.prepare.embeddings import Embedder

    return Embedder(model_path, batch_size)


class PiiAnalyzerResource(dg.ConfigurableResource):
    """presidio AnalyzerEngine with Forge's recognizers; spacy_model overrides settings.prepare.scrub."""

    spacy_model: str | None = None

    def get(self, settings: ScrubSettings, runtime: RuntimeSettings | None = None):
        spacy_model = self.spacy_model or settings.spacy_model
        if runtime is not None and runtime.engine == "ray":
            from forge_pipeline.runtime.ray_prepare import RayPiiAnalyzer

            return RayPiiAnalyzer(runtime, spacy_model, settings.phone_regions, settings.address_patterns)
        # spaCy + presidio take seconds to load: cache per process so every asset and check shares one engine
        return _analyzer(spacy_model, tuple(settings.phone_regions), settings.address_patterns)


class EmbedderResource(dg.ConfigurableResource):
    """Sentence-transformers encoder; model_path overrides settings.prepare.dedup.embedding_model."""

    model_path: str | None = None

    def get(self, settings: DedupSettings, runtime: RuntimeSettings | None = None):
        model_path = self.model_path or settings.embedding_model
        if runtime is not None and runtime.engine == "ray":
            from forge_pipeline.runtime.ray_prepare import RayEmbedder

            return RayEmbedder(runtime, model_path, settings.batch_size)
        return _embedder(model_path, settings.batch_size)


def prepare_resources() -> dict:
    return {"pii_analyzer": PiiAnalyzerResource(), "embedder": EmbedderResource()}


# The folder loader takes a module's Definitions object as everything the module defines: here, its resources.
defs = dg.Definitions(resources=prepare_resources())
