"""The GGUF embedding backend (llama-cpp-python, embedding=True) on a real tiny GGUF built by the export
stage's own converter, and the embedding index built with it."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from forge_pipeline.embed.backends import EmbedBackendError, GgufBackend, build_backend  # noqa: E402
from forge_pipeline.embed.config import EmbedSettings  # noqa: E402
from forge_pipeline.embed.index import build_embedding_index  # noqa: E402
from forge_pipeline.embed.search import search  # noqa: E402
from forge_pipeline.embed.store import load_current  # noqa: E402
from forge_pipeline_tests.embed_fixtures import records  # noqa: E402


@pytest.fixture(scope="module")
def tiny_gguf(serve_models):
    """The tiny Llama converted to an f16 GGUF: the session's (conftest.serve_models; read only)."""
    return serve_models.base_gguf


@pytest.fixture(scope="module")
def gguf_backend(tiny_gguf):
    backend = build_backend(EmbedSettings(backend="gguf", gguf_model=tiny_gguf))
    yield backend
    backend.close()


@pytest.mark.slow  # the session's tiny GGUF (built and converted once, ~25 s on 2 shared cores)
def test_gguf_backend_gives_normalised_deterministic_vectors_of_the_models_width(gguf_backend):
    assert isinstance(gguf_backend, GgufBackend) and gguf_backend.dimension == 256
    vectors = gguf_backend.encode(["read replicas take the load", "team lead", "read replicas take the load"])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert gguf_backend.texts_encoded >= 3


@pytest.mark.slow  # the session's tiny GGUF (built and converted once, ~25 s on 2 shared cores)
def test_index_built_with_gguf_records_the_model_and_finds_an_exact_text(tmp_path, gguf_backend):
    settings = EmbedSettings(backend="gguf", gguf_model=gguf_backend.model_path)
    _, meta, report = build_embedding_index(
        records(), "v1", tmp_path / "embeddings", gguf_backend, tmp_path / "cache", settings
    )
    assert (meta["backend"], meta["dimension"], meta["model"]) == ("gguf", 256, "base-f16.gguf")
    assert report.texts_embedded == report.chunks
    version = load_current(tmp_path / "embeddings")
    # a random tiny model ranks by surface overlap at best, but a chunk's own text is always its nearest
    query = version.chunks.filter(version.chunks["example_id"] == "running")["text"][0]
    assert search(version, gguf_backend, query, k=1)[0]["example_id"] == "running"
    _, _, again = build_embedding_index(
        records(), "v2", tmp_path / "embeddings", gguf_backend, tmp_path / "cache", settings
    )
    assert again.texts_embedded == 0


def test_gguf_backend_without_a_file_is_a_clear_error(tmp_path):
    with pytest.raises(EmbedBackendError, match="gguf_model is not set"):
        build_backend(EmbedSettings(backend="gguf"))
    with pytest.raises(EmbedBackendError, match="missing.gguf is not a file"):
        build_backend(EmbedSettings(backend="gguf", gguf_model=tmp_path / "missing.gguf"))


@pytest.mark.slow  # shares the tiny GGUF built above
def test_server_embeds_and_searches_with_the_configured_gguf(tmp_path, tiny_gguf):
    from fastapi.testclient import TestClient

    from forge_pipeline.embed.backends import shared_backend
    from forge_pipeline.embed.store import index_root
    from forge_pipeline.serve.app import create_app
    from forge_pipeline.settings import load_settings

    settings = load_settings(data_root=tmp_path / "root", embed={"backend": "gguf", "gguf_model": str(tiny_gguf)})
    settings.paths.ensure()
    backend = shared_backend(settings.embed, settings.prepare.dedup.embedding_model)
    build_embedding_index(
        records(), "v1", index_root(settings.data_root), backend, settings.paths.cache, settings.embed
    )
    with TestClient(create_app(settings, watch=False)) as client:
        payload = client.post("/v1/embeddings", json={"input": ["team lead"]}).json()
        assert payload["model"] == "base-f16.gguf" and len(payload["data"][0]["embedding"]) == 256
        query = "Long run on Sundays, intervals on Tuesdays"
        hits = client.post("/v1/search", json={"query": query, "k": 2}).json()
        assert hits["model"] == "base-f16.gguf" and len(hits["data"]) == 2
