"""OpenAI's models resource: `GET /v1/models`, `GET /v1/models/{model}`.

Every id listed can be sent as `model` in a chat or completion request: the served (current) version, the
A/B candidate, and each manifest version an adapter swap on the served base can answer with. While the
manifest cannot be read (or is structurally broken), the list is what the server verified earlier and can
still answer with, and `manifest_error` says what is wrong: never a 500. `forge` and `current` (the names for
"whatever is served") can be retrieved too: they describe the serving version. Forge's own fields (`current`,
`serving`, the manifest entry) ride along beside OpenAI's `id`, `object`, `created`, `owned_by`; the SDK keeps
unknown fields.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends

from forge_pipeline.export.manifest import ManifestError
from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.errors import model_not_found
from forge_pipeline.serve.models import DEFAULT_MODEL_NAMES, ModelHost, NoModelError
from forge_pipeline.serve.versions import UnknownVersionError


def _created(entry: dict) -> int:
    try:
        return int(datetime.fromisoformat(str(entry.get("created_at"))).timestamp())
    except (ValueError, AttributeError):
        return 0


router = APIRouter()


def servable(model_host: ModelHost) -> tuple[dict[str, dict], str | None]:
    """{version: manifest entry} for every version a request can name, and the manifest's problem if any."""
    entries: dict[str, dict] = {}
    problem = None
    try:
        versions = model_host.versions.read()["versions"]
    except ManifestError as err:  # keep answering with what was verified and is still servable
        versions, problem = model_host.known_versions(), str(err)
    for version, entry in versions.items():
        try:
            model_host.resolve(version)
        except (UnknownVersionError, NoModelError):
            continue
        entries[version] = entry if isinstance(entry, dict) else {}
    if model_host.version is not None and model_host.version not in entries:
        entries[model_host.version] = model_host.entry or {}
    return entries, problem


def describe(model_host: ModelHost, version: str, entry: dict, model_id: str | None = None) -> dict:
    return {
        **entry,
        "id": model_id or version,
        "version": version,
        "object": "model",
        "created": _created(entry),
        "owned_by": "forge",
        "serving": version == model_host.version,
        "candidate": (model_host.candidate or {}).get("version") == version,
    }


@router.get("/v1/models")
def list_models(model_host: ModelHost = Depends(deps.model_host)):
    entries, problem = servable(model_host)
    listing = {
        "object": "list",
        "data": [describe(model_host, v, e) for v, e in entries.items()],
        "serving": model_host.version,
    }
    if problem:
        listing["manifest_error"] = problem
    return listing


@router.get("/v1/models/{model}")
def retrieve_model(model: str, model_host: ModelHost = Depends(deps.model_host)):
    if model in DEFAULT_MODEL_NAMES:
        if model_host.version is None:
            raise model_not_found(model, "no version is being served yet")
        return describe(model_host, model_host.version, model_host.entry or {}, model_id=model)
    entries, _ = servable(model_host)
    if model not in entries:
        raise model_not_found(model)
    return describe(model_host, model, entries[model])
