"""Forge's HTTP server: OpenAI's API shape for inference (chat and completions, embeddings, models) on the
manifest's versions, files and fine-tuning jobs (Dagster runs), plus Forge's own routes (interactions,
search, downloads, admin).

One router module per resource (serve/*_routes.py: module-level routers whose handlers get what they need
from `app.state` through `serve/dependencies.py`), one error helper (serve/errors.py). Generation always goes
through llama-cpp-python's `create_chat_completion` / `create_completion`; the routers only route, guard and
label (every response names the model version that produced it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from forge_pipeline.serve import (
    chat_routes,
    embedding_routes,
    files_routes,
    fine_tuning_routes,
    forge_routes,
    model_routes,
    playground_routes,
)
from forge_pipeline.serve import metrics as metrics_routes
from forge_pipeline.serve.dagster_client import DagsterClient
from forge_pipeline.serve.embedding_routes import EmbeddingService
from forge_pipeline.serve.errors import APIError, install_error_handlers
from forge_pipeline.serve.files_routes import FileStore
from forge_pipeline.serve.fine_tuning import FineTuningJobs
from forge_pipeline.serve.interactions import InteractionStore, ServedLog, served_log_dir
from forge_pipeline.serve.metrics import Metrics, RequestMetrics
from forge_pipeline.serve.models import ModelHost
from forge_pipeline.serve.playground_routes import PLAYGROUND_DIR
from forge_pipeline.serve.protocol import VERSION_HEADER
from forge_pipeline.serve.serving import OpenAIServing
from forge_pipeline.settings import ForgeSettings

log = logging.getLogger(__name__)


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed upload passes its limit: FastAPI's HTTPException, which its body
    parsing re-raises as it is (anything else becomes a 400), to the error handler (413, OpenAI-shaped)."""

    def __init__(self, detail: str):
        super().__init__(413, detail)


class BodyLimit:
    """413 for bodies over the limit. Pure ASGI (not BaseHTTPMiddleware, which keeps a streamed response's
    generator alive after the client hangs up). A declared Content-Length is checked up front; a chunked
    body is counted as it arrives and replayed to the app.

    `limits` gives some paths a limit of their own, {path: (bytes, setting name)} (file uploads: hundreds of
    MB). Their bodies are never buffered here: they are counted as the app reads them, and the read fails
    with 413 once past the limit."""

    def __init__(self, app, max_bytes: int, limits: dict[str, tuple[int, str]] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.limits = limits or {}

    async def _reject(self, send, detail: str, limit: int, setting: str) -> None:
        body = json.dumps(APIError(413, f"{detail} exceeds {setting} ({limit})").body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, setting = self.limits.get(scope.get("path", ""), (self.max_bytes, "serve.max_request_bytes"))
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                return await self._reject(send, f"request body of {int(declared)} bytes", limit, setting)
            return await self.app(scope, receive, send)
        # A Content-Length that is not a number used to let the body through uncounted; count it like a chunked one.
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        if scope.get("path", "") in self.limits:
            return await self.app(scope, self._counting(receive, limit, setting), send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await self._reject(send, "request body", limit, setting)
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

    @staticmethod
    def _counting(receive, limit: int, setting: str):
        size = 0

        async def counted():
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(f"request body exceeds {setting} ({limit})")
            return message

        return counted


def threads_per_context(parallel: int) -> int:
    """llama.cpp threads for each of `parallel` contexts: llama-cpp-python's default (half the logical cores,
    i.e. the physical ones on most machines) shared out, so parallel requests do not oversubscribe the CPU."""
    return max(1, (os.cpu_count() or 2) // 2 // max(1, parallel))


def stop_generating_on_signals(model_host: ModelHost):
    """On SIGTERM/SIGINT, before the server's own handler (uvicorn's graceful shutdown) runs: generations stop
    at their next token and waiting requests give up, each client getting an OpenAI-shaped 503, so the server
    exits well within serve.shutdown_timeout_s. Returns a function that puts the previous handlers back.
    Signal handlers can only be set from the main thread; elsewhere (TestClient, Ray replicas) nothing is done."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {}  # signal -> the handler it had

    def handler(signum, frame):
        model_host.begin_shutdown()
        chained = previous.get(signum)
        if callable(chained):
            chained(signum, frame)
        else:  # SIG_DFL / SIG_IGN: what would have happened without us
            signal.signal(signum, chained)
            signal.raise_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, chained in previous.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, chained)

    return restore


def create_app(settings: ForgeSettings, host: ModelHost | None = None, watch: bool = True) -> FastAPI:
    serve = settings.serve
    paths = settings.paths
    store = InteractionStore(paths.interactions)
    served = ServedLog(served_log_dir(settings))  # per-response version, latency, tokens (for `forge compare`)
    model_host = host or ModelHost(
        paths.manifest,
        n_ctx=serve.n_ctx,
        n_threads=serve.n_threads or threads_per_context(serve.parallel_requests),
        embeddings=serve.embeddings,
        router_seed=settings.feedback.router_seed,
        parallel=serve.parallel_requests,
    )
    dagster = DagsterClient(serve.dagster_url, serve.dagster_location, timeout_s=serve.dagster_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(model_host.poll_once)
        if watch:
            model_host.start_watching(serve.manifest_poll_s)
        restore = stop_generating_on_signals(model_host)
        try:
            yield
        finally:
            restore()
            # In-flight generations stop at their next token (ModelHost.stopping_event), so this is quick.
            await run_in_threadpool(model_host.close)

    app = FastAPI(title="Forge", lifespan=lifespan)
    app.state.host = model_host
    app.state.store = store
    app.state.served = served
    install_error_handlers(app)
    metrics = Metrics(model_host)
    app.state.metrics = metrics
    app.add_middleware(
        BodyLimit,
        max_bytes=serve.max_request_bytes,
        limits={"/v1/files": (serve.max_file_bytes, "serve.max_file_bytes")},
    )
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: 413s are counted too

    app.state.settings = settings
    app.state.serving = OpenAIServing(model_host, served, store, serve.log_served_chats, metrics, settings.decoding)
    # /v1/embeddings (configured embed backend), /v1/search and the index downloads
    app.state.embeddings = EmbeddingService(settings, model_host)
    app.state.files = FileStore(paths.manifest.parent / "files", paths.imports)
    app.state.fine_tuning = FineTuningJobs(settings, dagster, app.state.files)
    for module in (
        metrics_routes,
        chat_routes,
        embedding_routes,
        model_routes,
        files_routes,
        fine_tuning_routes,
        forge_routes,
    ):
        app.include_router(module.router)
    # /playground: a static page over the routes above
    app.include_router(playground_routes.router)
    app.mount("/playground/static", StaticFiles(directory=PLAYGROUND_DIR), name="playground")
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory (`--factory forge_pipeline.serve.app:app_from_env`): settings from env/FORGE_CONFIG."""
    from forge_pipeline.settings import load_settings

    settings = load_settings()
    settings.paths.ensure()
    return create_app(settings)


__all__: list[Any] = ["create_app", "app_from_env", "VERSION_HEADER"]
