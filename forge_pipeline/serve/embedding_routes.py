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
from typing import Literal, cast

import numpy as np
from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from forge_pipeline.embed.backends import EmbedBackendError, shared_backend
from forge_pipeline.embed.search import IndexReader, ModelMismatchError, search
from forge_pipeline.embed.store import INDEX_FILES, IndexNotFoundError, current_version_dir, index_root
from forge_pipeline.export.manifest import sha256_of
from forge_pipeline.serve.errors import APIError, invalid, no_model, unsupported
from forge_pipeline.settings import ForgeSettings

INDEX_VERSION_HEADER = "x-forge-index-version"
MAX_INPUTS = 2048  # OpenAI's own limit on inputs per embeddings request


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. `input` may be text, texts, or token ids (one array or several), as the
    SDK and LangChain send them; `encoding_format` base64 is the SDK's default."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None  # the server embeds with its configured backend; the answer names it
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, gt=0)
    user: str | None = None  # an end-user id for the caller's own records; changes nothing here


def _encode(vector, encoding_format: str):
    # OpenAI's base64 form: the little-endian float32 bytes of the vector.
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    k: int = Field(default=5, ge=1, le=100)
    source: str | None = Field(default=None, description="Only this source: vault, conversation, interaction, import.")


def embedding_router(settings: ForgeSettings, model_host) -> APIRouter:
    router = APIRouter()
    embed = settings.embed
    root = index_root(settings.data_root)
    reader = IndexReader(root)
    uses_served_model = embed.backend == "gguf" and embed.gguf_model is None

    def backend():
        try:
            return shared_backend(embed, settings.prepare.dedup.embedding_model)
        except EmbedBackendError as err:
            raise APIError(409, str(err)) from None

    def served_embeddings(inputs: list) -> tuple[list, int, str]:
        from forge_pipeline.serve.chat_routes import check_token_ids
        from forge_pipeline.serve.models import NoModelError

        try:
            with model_host.session("embed") as session:
                texts = []
                for item in inputs:
                    if isinstance(item, list):  # token ids of the served model's vocabulary: back to its text
                        check_token_ids(session.llm, item, "input")
                        item = session.llm.detokenize(item).decode("utf-8", errors="replace")
                    texts.append(item)
                result = session.llm.create_embedding(texts)
                version = session.version
        except NoModelError as err:
            raise no_model(err) from None
        vectors = [row["embedding"] for row in result["data"]]
        return vectors, result["usage"]["prompt_tokens"], version

    @router.post("/v1/embeddings")
    def embeddings(body: EmbeddingsRequest):
        given = body.input
        inputs: list[str | list[int]]
        if isinstance(given, str):
            inputs = [given]
        elif given and isinstance(given[0], int):
            inputs = [given]  # one token array
        else:
            inputs = list(cast("list[str] | list[list[int]]", given))
        if not inputs or len(inputs) > MAX_INPUTS or any(len(item) == 0 for item in inputs):
            raise invalid(
                f"input must be a non-empty string, or 1..{MAX_INPUTS} non-empty strings or token arrays", param="input"
            )
        headers = {}
        if uses_served_model:
            vectors, tokens, name = served_embeddings(inputs)  # llama.cpp takes text or token ids alike
            headers["x-forge-model-version"] = name
        else:
            if not isinstance(inputs[0], str):
                raise unsupported(
                    "input",
                    f"token ids only mean something to the served GGUF; the {embed.backend} backend embeds text",
                )
            texts = cast("list[str]", inputs)  # all text: the request's type allows no mix of text and token ids
            model = backend()
            vectors = model.encode(texts)
            tokens = sum(len(t.split()) for t in texts)  # whitespace words: the backends do not expose counts alike
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
    def search_index(body: SearchRequest):
        try:
            version = reader.current()
        except IndexNotFoundError as err:
            raise APIError(404, str(err)) from None
        if uses_served_model:
            raise APIError(
                409,
                "search needs the model the index was built with: set embed.gguf_model "
                "(backend gguf) or use backend sentence-transformers",
            )
        try:
            results = search(version, backend(), body.query, body.k, body.source)
        except ModelMismatchError as err:
            raise APIError(409, str(err)) from None
        return JSONResponse(
            {
                "object": "list",
                "index_version": version.meta["version_id"],
                "model": version.meta["model"],
                "data": results,
            },
            headers={INDEX_VERSION_HEADER: version.meta["version_id"]},
        )

    def current_folder():
        try:
            return current_version_dir(root)
        except IndexNotFoundError as err:
            raise APIError(404, str(err)) from None

    hashes: dict[tuple, str] = {}

    def sha256(path) -> str:
        # Hashed once per (path, size, mtime): the files of an index version never change once written.
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in hashes:
            hashes[key] = sha256_of(path)
        return hashes[key]

    @router.get("/v1/embeddings/index/sha256")
    def index_checksums():
        """The sha256 of each file of the current index version, to check a download against."""
        folder = current_folder()
        return JSONResponse(
            {"index_version": folder.name, "files": {f: sha256(folder / f) for f in INDEX_FILES}},
            headers={INDEX_VERSION_HEADER: folder.name},
        )

    @router.get("/v1/embeddings/index")
    def download_index():
        folder = current_folder()
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
    def download_index_file(file: str):
        if file not in INDEX_FILES:  # only the index's own files: no client path reaches the filesystem
            raise APIError(404, f"no index file {file!r}; one of {list(INDEX_FILES)}")
        folder = current_folder()
        return FileResponse(
            folder / file,
            filename=f"{folder.name}-{file}",
            media_type="application/octet-stream",
            headers={INDEX_VERSION_HEADER: folder.name, "x-forge-sha256": sha256(folder / file)},
        )

    return router
