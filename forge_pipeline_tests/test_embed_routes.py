"""The embedding routes (in-process FastAPI app, real MiniLM and FAISS) and `forge search`."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from forge_pipeline.cli import app as cli_app  # noqa: E402
from forge_pipeline.embed.backends import shared_backend  # noqa: E402
from forge_pipeline.embed.index import build_embedding_index  # noqa: E402
from forge_pipeline.embed.store import index_root  # noqa: E402
from forge_pipeline.serve.app import create_app  # noqa: E402
from forge_pipeline.settings import load_settings  # noqa: E402
from forge_pipeline_tests.embed_fixtures import records  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    settings = load_settings(data_root=tmp_path_factory.mktemp("embed_routes") / "root")
    settings.paths.ensure()
    backend = shared_backend(settings.embed, settings.prepare.dedup.embedding_model)
    app = create_app(settings, watch=False)  # no manifest: no chat model, the embedding routes still work
    with TestClient(app) as client:
        yield {"client": client, "settings": settings, "backend": backend}


def _build_index(served) -> None:
    settings = served["settings"]
    build_embedding_index(
        records(), "v1", index_root(settings.data_root), served["backend"], settings.paths.cache, settings.embed
    )


def test_search_and_download_before_any_index_are_404_naming_the_asset(tmp_path):
    # Its own data root, so the answer does not depend on whether another test built the index first.
    settings = load_settings(data_root=tmp_path / "root")
    settings.paths.ensure()
    with TestClient(create_app(settings, watch=False)) as client:
        response = client.post("/v1/search", json={"query": "sourdough"})
        assert response.status_code == 404 and "embedding_index" in response.json()["error"]["message"]
        assert client.get("/v1/embeddings/index").status_code == 404
        assert client.get("/v1/embeddings/index/meta.json").status_code == 404


def test_embeddings_route_has_the_openai_shape_and_minilm_width(served):
    response = served["client"].post(
        "/v1/embeddings", json={"input": ["read replicas", "team lead"], "model": "whatever-the-client-sends"}
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["object"] == "list" and payload["usage"]["prompt_tokens"] == 4
    data = payload["data"]
    assert [d["index"] for d in data] == [0, 1] and all(d["object"] == "embedding" for d in data)
    vectors = np.array([d["embedding"] for d in data])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(vectors, served["backend"].encode(["read replicas", "team lead"]), atol=1e-5)
    single = served["client"].post("/v1/embeddings", json={"input": "one text"}).json()
    assert len(single["data"]) == 1
    assert served["client"].post("/v1/embeddings", json={"input": []}).status_code == 400


def test_search_route_returns_the_planted_note_first_with_scores_and_provenance(served):
    _build_index(served)
    response = served["client"].post("/v1/search", json={"query": "feeding my sourdough starter", "k": 3})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["index_version"] == "v1" and response.headers["x-forge-index-version"] == "v1"
    first = payload["data"][0]
    assert first["example_id"] == "sourdough" and first["source_path"] == "Kitchen/Sourdough.md"
    assert first["rank"] == 1 and 0 < first["score"] <= 1.0 and len(payload["data"]) == 3
    assert served["client"].post("/v1/search", json={"query": ""}).status_code == 400


def test_index_download_is_a_zip_of_parquet_faiss_and_meta(served):
    _build_index(served)
    response = served["client"].get("/v1/embeddings/index")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["chunks.parquet", "index.faiss", "meta.json"]
    table = pl.read_parquet(io.BytesIO(archive.read("chunks.parquet")))
    index = faiss.deserialize_index(np.frombuffer(archive.read("index.faiss"), dtype=np.uint8))
    assert index.ntotal == table.height and "sourdough" in set(table["example_id"])
    single = served["client"].get("/v1/embeddings/index/meta.json")
    assert single.status_code == 200 and single.json()["dimension"] == 384
    published = served["client"].get("/v1/embeddings/index/sha256").json()
    for name in ("chunks.parquet", "index.faiss", "meta.json"):
        assert hashlib.sha256(archive.read(name)).hexdigest() == published["files"][name]
    assert single.headers["x-forge-sha256"] == published["files"]["meta.json"]
    assert served["client"].get("/v1/embeddings/index/..%2Fversions.json").status_code == 404


def test_forge_search_prints_a_table_with_the_planted_note_first(served):
    _build_index(served)
    result = CliRunner().invoke(
        cli_app,
        ["--data-root", str(served["settings"].data_root), "search", "feeding my sourdough starter", "-k", "2"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "│" in line and "score" not in line]
    assert "Kitchen/Sourdough.md" in rows[0] and len(rows) == 2


def test_forge_search_without_an_index_says_what_to_materialize(tmp_path):
    result = CliRunner().invoke(cli_app, ["--data-root", str(tmp_path), "search", "anything"])
    assert result.exit_code == 1 and "embedding_index" in result.output
