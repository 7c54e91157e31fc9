"""Forge's own routes (not part of OpenAI's API): interactions, model downloads, health and admin. Errors use
the same OpenAI-shaped helper as the OpenAI routes. (Fine-tuning runs: fine_tuning_routes.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from forge_pipeline.export.manifest import ManifestError, read_manifest
from forge_pipeline.records import InteractionIn
from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.errors import APIError, invalid
from forge_pipeline.serve.interactions import InteractionStore, ServedLog
from forge_pipeline.serve.models import ModelHost
from forge_pipeline.serve.protocol import VERSION_HEADER
from forge_pipeline.settings import ForgeSettings

router = APIRouter()


# -- downloads ----------------------------------------------------------------------------------
def download(model_host: ModelHost, manifest_path: Path, version: str, roles: tuple[str, ...]):
    try:
        manifest = read_manifest(manifest_path)
    except ManifestError as err:
        raise APIError(500, str(err), code="manifest_unreadable") from None
    # Only files the manifest names can be served, so no client-supplied path ever reaches the filesystem.
    if version not in manifest["versions"]:
        raise APIError(404, f"model version {version!r} is not in the manifest", param="version")
    try:
        resolved = model_host.versions.verified_files(manifest, version)  # hashed once per (path, size, mtime)
    except ManifestError as err:
        raise APIError(409, str(err), code="manifest_file_mismatch") from None
    for role in roles:
        if role in resolved:
            path = Path(resolved[role])
            if path.suffix.lower() != ".gguf":
                # Defence in depth: a hand-edited manifest must not turn this route into a file server.
                raise APIError(404, f"model version {version!r} names a {role} that is not a .gguf file")
            return FileResponse(
                path,
                filename=f"{version}-{path.name}",
                media_type="application/octet-stream",
                headers={VERSION_HEADER: version},
            )
    raise APIError(404, f"model version {version!r} has no {' or '.join(roles)} file")


@router.get("/v1/models/{version}/gguf")
@router.head("/v1/models/{version}/gguf", include_in_schema=False)
def download_gguf(
    version: str,
    model_host: ModelHost = Depends(deps.model_host),
    settings: ForgeSettings = Depends(deps.settings),
):
    """The model to run on its own: the merged GGUF, or the base when the version has none."""
    return download(model_host, settings.paths.manifest, version, ("merged_gguf", "base_gguf"))


@router.get("/v1/models/{version}/base")
@router.head("/v1/models/{version}/base", include_in_schema=False)
def download_base(
    version: str,
    model_host: ModelHost = Depends(deps.model_host),
    settings: ForgeSettings = Depends(deps.settings),
):
    return download(model_host, settings.paths.manifest, version, ("base_gguf",))


@router.get("/v1/models/{version}/adapter")
@router.head("/v1/models/{version}/adapter", include_in_schema=False)
def download_adapter(
    version: str,
    model_host: ModelHost = Depends(deps.model_host),
    settings: ForgeSettings = Depends(deps.settings),
):
    return download(model_host, settings.paths.manifest, version, ("adapter_gguf",))


# -- interactions -------------------------------------------------------------------------------
@router.post("/v1/interactions", status_code=201)
async def post_interaction(
    request: Request,
    store: InteractionStore = Depends(deps.interaction_store),
    served: ServedLog = Depends(deps.served_log),
):
    raw = await request.body()
    try:
        record = InteractionIn.model_validate_json(raw)
    except ValidationError as err:
        problem = json.loads(err.json())[0]
        param = ".".join(str(p) for p in problem.get("loc", ())) or None
        raise invalid(f"invalid interaction: {param or 'body'}: {problem.get('msg')}", param=param) from None
    if (record.rating is not None or record.corrected_reply is not None) and record.messages[-1].role != "assistant":
        # Checked here, not in the record model: files written before this check must stay readable.
        raise invalid(
            "a rating or corrected_reply is about the last assistant reply: end messages with it", param="messages"
        )
    if record.response_id is not None:
        # The server knows which version produced a response: a rating lands on that version.
        version = await run_in_threadpool(served.version_of, record.response_id)
        if version is None:
            raise invalid(f"response_id {record.response_id!r} was not served by this server", param="response_id")
        if record.model_version not in (None, version):
            raise invalid(
                f"model_version {record.model_version!r} does not match {version!r}, the version "
                f"that produced response_id {record.response_id!r}",
                param="model_version",
            )
        record = record.model_copy(update={"model_version": version})
    stored = await run_in_threadpool(store.append, record)
    # The file is named relative to the interactions folder: the server's own paths are not the client's business.
    return {
        "interaction_id": stored.interaction_id,
        "received_at": stored.received_at,
        "stored_in": store.path_for_id(stored).name,
    }


# -- health and admin ---------------------------------------------------------------------------
@router.get("/health")
def health(model_host: ModelHost = Depends(deps.model_host)):
    report = model_host.health()
    return JSONResponse(report, status_code=200 if report["model_version"] else 503)


@router.post("/admin/reload", dependencies=[Depends(deps.require_admin)])
def admin_reload(model_host: ModelHost = Depends(deps.model_host)):
    result = model_host.reload()
    return JSONResponse(result, status_code=409 if result.get("error") else 200)
