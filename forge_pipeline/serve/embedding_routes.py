"""Embedding and search routes of `forge serve`:

- `POST /v1/embeddings` (OpenAI shape) with the configured `embed` backend. Backend gguf with no
  `embed.gguf_model` embeds with the GGUF the server is serving (its embedding context), so a person can
  embed with exactly the runtime that serves.
- `POST /v1/search`: the top-k notes/interactions of the current index version, with scores and provenance.
- `GET /v1/embeddings/index`: the current index version as one zip (chunks.parquet with ids, provenance and
  vectors; index.faiss; meta.json); `GET /v1/embeddings/index/{file}` for one of those files.
"""

from __future__ import annotations

import os
import tempfile
import zipfile

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from forge_pipeline.embed.backends import EmbedBackendError, shared_backend
from forge_pipeline.embed.search import IndexReader, ModelMismatchError, search
from forge_pipeline.embed.store import INDEX_FILES, IndexNotFoundError, current_version_dir, index_root
from forge_pipeline.settings import ForgeSettings

INDEX_VERSION_HEADER = "x-forge-index-version"
MAX_INPUTS = 2048  # OpenAI's own limit on inputs per embeddings request


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients send user, dimensions, ...

    model: str | None = None
    input: str | list[str]
    encoding_format: str = "float"


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
            raise HTTPException(409, str(err)) from None

    def served_embeddings(texts: list[str]) -> JSONResponse:
        from forge_pipeline.serve.models import NoModelError

        try:
            with model_host.session("embed") as session:
                result = session.llm.create_embedding(texts)
                version = session.version
        except NoModelError as err:
            raise HTTPException(503, f"no model is being served: {err}") from None
        result["model"] = version
        return JSONResponse(result, headers={"x-forge-model-version": version})

    @router.post("/v1/embeddings")
    def embeddings(body: EmbeddingsRequest):
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or len(texts) > MAX_INPUTS or any(not isinstance(t, str) or not t for t in texts):
            raise HTTPException(422, f"input must be a non-empty string or 1..{MAX_INPUTS} non-empty strings")
        if body.encoding_format != "float":
            raise HTTPException(422, "only encoding_format 'float' is supported")
        if uses_served_model:
            return served_embeddings(texts)
        model = backend()
        vectors = model.encode(texts)
        tokens = sum(len(t.split()) for t in texts)  # whitespace words: the backends do not expose counts alike
        return {"object": "list", "model": model.name,
                "data": [{"object": "embedding", "index": i, "embedding": row.tolist()} for i, row in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    @router.post("/v1/search")
    def search_index(body: SearchRequest):
        try:
            version = reader.current()
        except IndexNotFoundError as err:
            raise HTTPException(404, str(err)) from None
        if uses_served_model:
            raise HTTPException(409, "search needs the model the index was built with: set embed.gguf_model "
                                     "(backend gguf) or use backend sentence-transformers")
        try:
            results = search(version, backend(), body.query, body.k, body.source)
        except ModelMismatchError as err:
            raise HTTPException(409, str(err)) from None
        return JSONResponse({"object": "list", "index_version": version.meta["version_id"],
                             "model": version.meta["model"], "data": results},
                            headers={INDEX_VERSION_HEADER: version.meta["version_id"]})

    def current_folder():
        try:
            return current_version_dir(root)
        except IndexNotFoundError as err:
            raise HTTPException(404, str(err)) from None

    @router.get("/v1/embeddings/index")
    def download_index():
        folder = current_folder()
        # Stored, not deflated: float vectors barely compress and the zip is built per request.
        handle, name = tempfile.mkstemp(prefix="forge-index-", suffix=".zip")
        os.close(handle)
        with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_STORED) as archive:
            for file in INDEX_FILES:
                archive.write(folder / file, arcname=file)
        return FileResponse(name, filename=f"embedding-index-{folder.name}.zip", media_type="application/zip",
                            headers={INDEX_VERSION_HEADER: folder.name}, background=BackgroundTask(os.unlink, name))

    @router.get("/v1/embeddings/index/{file}")
    def download_index_file(file: str):
        if file not in INDEX_FILES:  # only the index's own files: no client path reaches the filesystem
            raise HTTPException(404, f"no index file {file!r}; one of {list(INDEX_FILES)}")
        folder = current_folder()
        return FileResponse(folder / file, filename=f"{folder.name}-{file}", media_type="application/octet-stream",
                            headers={INDEX_VERSION_HEADER: folder.name})

    return router
