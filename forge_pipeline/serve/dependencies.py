"""What the routers' handlers work with, as FastAPI dependencies (`Depends`): each reads the one object
`create_app` put in `request.app.state`, so the routers are plain module-level `APIRouter`s and the app only
includes them (the shape of vLLM's OpenAI entrypoint). Types only: nothing here builds anything."""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from fastapi import Request

from forge_pipeline.serve.errors import APIError

if TYPE_CHECKING:
    from forge_pipeline.serve.embedding_routes import EmbeddingService
    from forge_pipeline.serve.files_routes import FileStore
    from forge_pipeline.serve.fine_tuning import FineTuningJobs
    from forge_pipeline.serve.interactions import InteractionStore, ServedLog
    from forge_pipeline.serve.metrics import Metrics
    from forge_pipeline.serve.models import ModelHost
    from forge_pipeline.serve.serving import OpenAIServing
    from forge_pipeline.settings import ForgeSettings


def openai_serving(request: Request) -> OpenAIServing:
    """The one generation path (chat and completions, streamed or not)."""
    return request.app.state.serving


def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def settings(request: Request) -> ForgeSettings:
    return request.app.state.settings


def model_host(request: Request) -> ModelHost:
    return request.app.state.host


def interaction_store(request: Request) -> InteractionStore:
    return request.app.state.store


def served_log(request: Request) -> ServedLog:
    return request.app.state.served


def file_store(request: Request) -> FileStore:
    return request.app.state.files


def fine_tuning_jobs(request: Request) -> FineTuningJobs:
    return request.app.state.fine_tuning


def embedding_service(request: Request) -> EmbeddingService:
    return request.app.state.embeddings


def _is_loopback(host: str | None) -> bool:
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return host == "localhost"


def require_admin(request: Request) -> None:
    """The admin, files and fine-tuning routes' guard: the admin token as a bearer token, or (when the settings
    trust them) a loopback client."""
    serve = settings(request).serve
    if serve.admin_loopback_without_token and _is_loopback(request.client.host if request.client else None):
        return
    supplied = request.headers.get("authorization", "")
    if serve.admin_token and hmac.compare_digest(supplied.encode(), f"Bearer {serve.admin_token}".encode()):
        return
    raise APIError(
        403,
        "admin, files and fine-tuning routes need 'Authorization: Bearer <serve.admin_token>' "
        "(set serve.admin_token; or serve.admin_loopback_without_token=true to trust loopback "
        "clients on a single-user machine)",
    )
