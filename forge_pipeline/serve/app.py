"""Forge's HTTP server: OpenAI-compatible inference on the manifest's current version, plus interactions,
model downloads, fine-tune jobs (through Dagster's GraphQL API) and admin routes.

Generation always goes through llama-cpp-python's `create_chat_completion` / `create_completion`; this
module only routes, guards and labels (every response names the model version that produced it).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from forge_pipeline.export.manifest import ManifestError, read_manifest, verify_version
from forge_pipeline.serve.dagster_client import DagsterClient, DagsterError
from forge_pipeline.serve.interactions import ChatMessage, InteractionIn, InteractionStore, ServedLog, served_log_dir
from forge_pipeline.serve.models import ModelHost, NoModelError
from forge_pipeline.settings import ForgeSettings

log = logging.getLogger(__name__)
VERSION_HEADER = "x-forge-model-version"


class ChatRequest(BaseModel):
    """The OpenAI chat fields Forge honours; unknown fields are ignored as OpenAI clients send many."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=128, gt=0)
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str
    max_tokens: int | None = Field(default=16, gt=0)
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str | list[str]


class FineTuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job: str = "forge_retrain_job"
    assets: list[str] | None = Field(default=None, description="Asset keys ('a/b' for multi-part); default: the job's.")


class BodyLimit:
    """413 for bodies over the limit. Pure ASGI (not BaseHTTPMiddleware, which keeps a streamed response's
    generator alive after the client hangs up). A declared Content-Length is checked up front; a chunked
    body is counted as it arrives and replayed to the app."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send, detail: str) -> None:
        body = json.dumps({"error": f"{detail} exceeds serve.max_request_bytes ({self.max_bytes})"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                return await self._reject(send, f"request body of {int(declared)} bytes")
            return await self.app(scope, receive, send)
        # A Content-Length that is not a number used to let the body through uncounted; count it like a chunked one.
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._reject(send, "request body")
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return host == "localhost"


def create_app(settings: ForgeSettings, host: ModelHost | None = None, watch: bool = True) -> FastAPI:
    serve = settings.serve
    paths = settings.paths
    store = InteractionStore(paths.interactions)
    served = ServedLog(served_log_dir(settings))  # per-response version, latency, tokens (for `forge compare`)
    model_host = host or ModelHost(paths.manifest, n_ctx=serve.n_ctx, embeddings=serve.embeddings,
                                   router_seed=settings.feedback.router_seed)
    dagster = DagsterClient(serve.dagster_url, serve.dagster_location, timeout_s=serve.dagster_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(model_host.poll_once)
        if watch:
            model_host.start_watching(serve.manifest_poll_s)
        yield
        model_host.close()

    app = FastAPI(title="Forge", lifespan=lifespan)
    app.state.host = model_host
    app.state.store = store
    app.state.served = served

    app.add_middleware(BodyLimit, max_bytes=serve.max_request_bytes)

    def require_admin(request: Request) -> None:
        if _is_loopback(request.client.host if request.client else None):
            return
        supplied = request.headers.get("authorization", "")
        if serve.admin_token and hmac.compare_digest(supplied.encode(), f"Bearer {serve.admin_token}".encode()):
            return
        raise HTTPException(403, "admin and fine-tune routes need a loopback client or "
                                 "'Authorization: Bearer <serve.admin_token>'")

    def no_model(err: Exception) -> HTTPException:
        return HTTPException(503, f"no model is being served: {err}")

    def versioned(payload: dict, version: str) -> JSONResponse:
        payload["model"] = version
        return JSONResponse(payload, headers={VERSION_HEADER: version})

    # -- inference ----------------------------------------------------------------------------------
    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatRequest):
        messages = [m.model_dump() for m in body.messages]
        options = {"max_tokens": body.max_tokens, "temperature": body.temperature, "top_p": body.top_p,
                   "stop": body.stop, "seed": body.seed}
        if body.stream:
            return _stream_chat(messages, options)
        try:
            with model_host.session(ab=True) as session:  # A/B: the router may pick the candidate
                started = time.perf_counter()
                result = session.llm.create_chat_completion(messages=messages, **options)
                latency_ms = (time.perf_counter() - started) * 1000
                version, route = session.version, session.route
        except NoModelError as err:
            raise no_model(err) from None
        usage = result.get("usage") or {}
        served.append(result["id"], version, route, latency_ms, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        if serve.log_served_chats:
            reply = result["choices"][0]["message"]["content"] or ""
            if reply.strip():
                store.append(InteractionIn(messages=[*body.messages, ChatMessage(role="assistant", content=reply)],
                                           model_version=version))
        return versioned(result, version)

    def _stream_chat(messages: list[dict], options: dict) -> StreamingResponse:
        # The session is entered here (not inside the generator) so a missing model is a 503, not a broken stream.
        session_cm = model_host.session(ab=True)
        try:
            session = session_cm.__enter__()
        except NoModelError as err:
            raise no_model(err) from None

        def events():
            started, response_id, chunks = time.perf_counter(), None, 0
            try:
                for chunk in session.llm.create_chat_completion(messages=messages, stream=True, **options):
                    chunk["model"] = session.version
                    response_id = response_id or chunk.get("id")
                    chunks += bool(chunk["choices"] and chunk["choices"][0].get("delta", {}).get("content"))
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"
            finally:
                session_cm.__exit__(None, None, None)
                if response_id:  # a stream has no usage block: one content chunk is one token
                    served.append(response_id, session.version, session.route,
                                  (time.perf_counter() - started) * 1000, None, chunks)

        async def stream():
            # Drive the generator ourselves: when a client hangs up, Starlette cancels this task, and the
            # generator must be closed (releasing the model lock) instead of waiting for garbage collection.
            generator = events()
            try:
                while True:
                    item = await anyio.to_thread.run_sync(next, generator, None)  # waits for a running step
                    if item is None:
                        break
                    yield item
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(generator.close)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={VERSION_HEADER: session.version})

    @app.post("/v1/completions")
    def completions(body: CompletionRequest):
        try:
            with model_host.session() as session:
                result = session.llm.create_completion(
                    body.prompt, max_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p,
                    stop=body.stop, seed=body.seed)
                return versioned(result, session.version)
        except NoModelError as err:
            raise no_model(err) from None

    # /v1/embeddings (configured embed backend), /v1/search and the index downloads: serve/embedding_routes.py
    from forge_pipeline.serve.embedding_routes import embedding_router

    app.include_router(embedding_router(settings, model_host))

    # -- models and downloads -----------------------------------------------------------------------
    def manifest_or_500() -> dict:
        try:
            return read_manifest(paths.manifest)
        except ManifestError as err:
            raise HTTPException(500, str(err)) from None

    @app.get("/v1/models")
    def list_models():
        manifest = manifest_or_500()
        data = [{"id": version, "object": "model", "owned_by": "forge", "created_at": entry.get("created_at"),
                 "current": version == manifest["current"], "serving": version == model_host.version}
                for version, entry in manifest["versions"].items()]
        return {"object": "list", "data": data, "current": manifest["current"], "serving": model_host.version}

    @app.get("/v1/models/{version}")
    def get_model(version: str):
        manifest = manifest_or_500()
        if version not in manifest["versions"]:
            raise HTTPException(404, f"model version {version!r} is not in the manifest")
        return manifest["versions"][version]

    def download(version: str, roles: tuple[str, ...]):
        manifest = manifest_or_500()
        # Only files the manifest names can be served, so no client-supplied path ever reaches the filesystem.
        if version not in manifest["versions"]:
            raise HTTPException(404, f"model version {version!r} is not in the manifest")
        try:
            resolved = verify_version(manifest, version, paths.manifest)
        except ManifestError as err:
            raise HTTPException(409, str(err)) from None
        for role in roles:
            if role in resolved:
                path = Path(resolved[role])
                if path.suffix.lower() != ".gguf":
                    # Defence in depth: a hand-edited manifest must not turn this route into a file server.
                    raise HTTPException(404, f"model version {version!r} names a {role} that is not a .gguf file")
                return FileResponse(path, filename=f"{version}-{path.name}", media_type="application/octet-stream",
                                    headers={VERSION_HEADER: version})
        raise HTTPException(404, f"model version {version!r} has no {' or '.join(roles)} file")

    @app.get("/v1/models/{version}/gguf")
    def download_gguf(version: str):
        return download(version, ("merged_gguf", "base_gguf"))

    @app.get("/v1/models/{version}/adapter")
    def download_adapter(version: str):
        return download(version, ("adapter_gguf",))

    # -- interactions -------------------------------------------------------------------------------
    @app.post("/v1/interactions", status_code=201)
    async def post_interaction(request: Request):
        raw = await request.body()
        try:
            record = InteractionIn.model_validate_json(raw)
        except ValidationError as err:
            return JSONResponse({"error": "invalid interaction", "detail": json.loads(err.json())}, status_code=422)
        if record.response_id is not None:
            # The server knows which version produced a response: a rating lands on that version.
            version = await run_in_threadpool(served.version_of, record.response_id)
            if version is None:
                return JSONResponse({"error": f"response_id {record.response_id!r} was not served by this server"},
                                    status_code=422)
            if record.model_version not in (None, version):
                return JSONResponse({"error": f"model_version {record.model_version!r} does not match {version!r}, "
                                              f"the version that produced response_id {record.response_id!r}"},
                                    status_code=422)
            record = record.model_copy(update={"model_version": version})
        stored = await run_in_threadpool(store.append, record)
        return {"interaction_id": stored.interaction_id, "received_at": stored.received_at,
                "stored_in": str(store.path_for_id(stored))}

    # -- fine-tunes (Dagster) -----------------------------------------------------------------------
    def dagster_call(fn, *args):
        try:
            return fn(*args)
        except DagsterError as err:
            raise HTTPException(err.status, str(err)) from None

    @app.post("/v1/fine-tunes", dependencies=[Depends(require_admin)])
    def create_fine_tune(body: FineTuneRequest | None = None):
        body = body or FineTuneRequest()
        run = dagster_call(dagster.launch, body.job, body.assets)
        return {"id": run["runId"], "object": "fine_tuning.job", "status": run["status"], "job": body.job}

    @app.get("/v1/fine-tunes/{run_id}", dependencies=[Depends(require_admin)])
    def get_fine_tune(run_id: str):
        run = dagster_call(dagster.run, run_id)
        return {"id": run["runId"], "object": "fine_tuning.job", "status": run["status"], "job": run.get("jobName"),
                "started_at": run.get("startTime"), "finished_at": run.get("endTime")}

    @app.get("/v1/fine-tunes/{run_id}/events", dependencies=[Depends(require_admin)])
    def fine_tune_events(run_id: str):
        return {"object": "list", "data": dagster_call(dagster.events, run_id)}

    @app.post("/v1/fine-tunes/{run_id}/cancel", dependencies=[Depends(require_admin)])
    def cancel_fine_tune(run_id: str):
        run = dagster_call(dagster.terminate, run_id)
        return {"id": run["runId"], "object": "fine_tuning.job", "status": run["status"]}

    # -- health and admin ---------------------------------------------------------------------------
    @app.get("/health")
    def health():
        report = model_host.health()
        return JSONResponse(report, status_code=200 if report["model_version"] else 503)

    @app.post("/admin/reload", dependencies=[Depends(require_admin)])
    def admin_reload():
        result = model_host.reload()
        return JSONResponse(result, status_code=409 if result.get("error") else 200)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (`--factory forge_pipeline.serve.app:app_from_env`): settings from env/FORGE_CONFIG."""
    from forge_pipeline.settings import load_settings

    settings = load_settings()
    settings.paths.ensure()
    return create_app(settings)


__all__: list[Any] = ["create_app", "app_from_env", "VERSION_HEADER"]
