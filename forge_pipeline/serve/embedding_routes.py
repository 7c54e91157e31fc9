"""Embedding and search routes of `forge serve`:

- `POST /v1/embeddings` (OpenAI shape) with the configured `embed` backend. Backend gguf with no
  `embed.gguf_model` embeds with the GGUF the server is serving (its embedding context), so a person can
  embed with exactly the runtime that serves.
- `POST /v1/search`: the top-k notes/interactions of the current index version, with scores and provenance.
- `GET /v1/embeddings/index`: the current index version as one zip (chunks.parquet with ids, provenance and
  vectors; index.faiss; meta.json); `GET /v1/embeddings/index/{file}` for one of those files (with an
  `x-forge-sha256` header); `GET /v1/embeddings/index/sha256` the sha256 of each, to check a download.
"""

from __future__ import annotations

import base64
import os
import tempfile
import zipfile

import numpy as np
from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from forge_pipeline.embed.backends import shared_backend
from forge_pipeline.embed.search import IndexReader, search
from forge_pipeline.embed.store import INDEX_FILES, current_version_dir, index_root
from forge_pipeline.export.manifest import sha256_of
from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.errors import APIError, invalid, unsupported
from forge_pipeline.serve.protocol import MAX_INPUTS, EmbeddingsRequest, SearchRequest, one_or_many
from forge_pipeline.settings import ForgeSettings

INDEX_VERSION_HEADER = "x-forge-index-version"


def _encode(vector, encoding_format: str):
    # OpenAI's base64 form: the little-endian float32 bytes of the vector.
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


class EmbeddingService:
    """The embed backend, the current index version and the sha256 of its files, for the routes below (one per
    app, in `app.state.embeddings`)."""

    def __init__(self, settings: ForgeSettings, model_host):
        self.embed = settings.embed
        self.dedup_model = settings.prepare.dedup.embedding_model
        self.model_host = model_host
        self.root = index_root(settings.data_root)
        self.reader = IndexReader(self.root)
        self.uses_served_model = self.embed.backend == "gguf" and self.embed.gguf_model is None
        self._hashes: dict[tuple, str] = {}

    def backend(self):
        return shared_backend(self.embed, self.dedup_model)

    def served_embeddings(self, inputs: list) -> tuple[list, int, str]:
        from forge_pipeline.serve.serving import check_token_ids

        with self.model_host.session("embed") as session:
            texts = []
            for item in inputs:
                if isinstance(item, list):  # token ids of the served model's vocabulary: back to its text
                    check_token_ids(session.llm, item, "input")
                    item = session.llm.detokenize(item).decode("utf-8", errors="replace")
                texts.append(item)
            result = session.llm.create_embedding(texts)
            version = session.version
        vectors = [row["embedding"] for row in result["data"]]
        return vectors, result["usage"]["prompt_tokens"], version

    def sha256(self, path) -> str:
        # Hashed once per (path, size, mtime): the files of an index version never change once written.
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = sha256_of(path)
        return self._hashes[key]


router = APIRouter()


@router.post("/v1/embeddings")
def embeddings(body: EmbeddingsRequest, service: EmbeddingService = Depends(deps.embedding_service)):
    inputs = one_or_many(body.input)
    if not inputs or len(inputs) > MAX_INPUTS or any(len(item) == 0 for item in inputs):
        raise invalid(
            f"input must be a non-empty string, or 1..{MAX_INPUTS} non-empty strings or token arrays", param="input"
        )
    headers = {}
    if service.uses_served_model:
        vectors, tokens, name = service.served_embeddings(inputs)  # llama.cpp takes text or token ids alike
        headers["x-forge-model-version"] = name
    else:
        if not isinstance(inputs[0], str):
            raise unsupported(
                "input",
                f"token ids only mean something to the served GGUF; the {service.embed.backend} backend embeds text",
            )
        model = service.backend()
        vectors = model.encode(inputs)
        tokens = sum(
            len(t.split()) for t in inputs if isinstance(t, str)
        )  # whitespace words: the backends do not expose counts alike
        name = model.name
    width = len(vectors[0])
    if body.dimensions is not None and body.dimensions != width:
        raise unsupported("dimensions", f"{name} embeds into {width} dimensions and cannot shorten them")
    return JSONResponse(
        {
            "object": "list",
            "model": name,
            "data": [
                {"object": "embedding", "index": i, "embedding": _encode(row, body.encoding_format)}
                for i, row in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        headers=headers,
    )


@router.post("/v1/search")
def search_index(body: SearchRequest, service: EmbeddingService = Depends(deps.embedding_service)):
    version = service.reader.current()
    if service.uses_served_model:
        raise APIError(
            409,
            "search needs the model the index was built with: set embed.gguf_model "
            "(backend gguf) or use backend sentence-transformers",
        )
    results = search(version, service.backend(), body.query, body.k, body.source)
    return JSONResponse(
        {
            "object": "list",
            "index_version": version.meta["version_id"],
            "model": version.meta["model"],
            "data": results,
        },
        headers={INDEX_VERSION_HEADER: version.meta["version_id"]},
    )


@router.get("/v1/embeddings/index/sha256")
def index_checksums(service: EmbeddingService = Depends(deps.embedding_service)):
    """The sha256 of each file of the current index version, to check a download against."""
    folder = current_version_dir(service.root)
    return JSONResponse(
        {"index_version": folder.name, "files": {f: service.sha256(folder / f) for f in INDEX_FILES}},
        headers={INDEX_VERSION_HEADER: folder.name},
    )


@router.get("/v1/embeddings/index")
def download_index(service: EmbeddingService = Depends(deps.embedding_service)):
    folder = current_version_dir(service.root)
    # Stored, not deflated: float vectors barely compress and the zip is built per request.
    handle, name = tempfile.mkstemp(prefix="forge-index-", suffix=".zip")
    os.close(handle)
    with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_STORED) as archive:
        for file in INDEX_FILES:
            archive.write(folder / file, arcname=file)
    return FileResponse(
        name,
        filename=f"embedding-index-{folder.name}.zip",
        media_type="application/zip",
        headers={INDEX_VERSION_HEADER: folder.name},
        background=BackgroundTask(os.unlink, name),
    )


@router.get("/v1/embeddings/index/{file}")
def download_index_file(file: str, service: EmbeddingService = Depends(deps.embedding_service)):
    if file not in INDEX_FILES:  # only the index's own files: no client path reaches the filesystem
        raise APIError(404, f"no index file {file!r}; one of {list(INDEX_FILES)}")
    folder = current_version_dir(service.root)
    return FileResponse(
        folder / file,
        filename=f"{folder.name}-{file}",
        media_type="application/octet-stream",
        headers={INDEX_VERSION_HEADER: folder.name, "x-forge-sha256": service.sha256(folder / file)},
    )
