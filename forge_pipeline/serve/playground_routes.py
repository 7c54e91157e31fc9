"""The playground: a static page at `/playground` (HTML, vanilla JS, CSS shipped in serve/playground/) that talks
to the model and teaches it through the same HTTP API as any client: streamed chat completions, /v1/models,
/v1/interactions, /v1/fine_tuning/jobs, /health. It adds no second way to chat, record feedback or start a job.

Why a static page and not Gradio: Gradio is a large dependency with its own FastAPI/pydantic pins and its own
event queue in front of the handlers; a page of plain JS calls exactly the routes an OpenAI client calls, so
what the playground does is what the API does.

The only route of its own is `/playground/status`: what no API route says yet (interactions recorded since
the newest manifest version, that version's fate beside the serving one, and whether this client needs the
admin token).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from forge_pipeline.export.manifest import ManifestError, read_manifest
from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.errors import APIError
from forge_pipeline.settings import ForgeSettings

PLAYGROUND_DIR = Path(__file__).resolve().parent / "playground"
# The page loads only its own script and stylesheet and talks only to this server: no inline script or style
# can run, so even text that slipped into the DOM as markup could not execute.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _parse_time(value) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def interactions_since(directory: Path, since: datetime | None) -> int:
    """Records in the interaction folder received after `since` (all of them when None). Files are one per UTC
    day, so only the days from `since` on are read."""
    count = 0
    first_day = f"{since.astimezone(UTC):%Y-%m-%d}.jsonl" if since else ""
    for path in sorted(Path(directory).glob("*.jsonl")):
        if path.name < first_day:
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            if since is None:
                count += 1
                continue
            try:
                received = _parse_time(json.loads(line).get("received_at"))
            except (json.JSONDecodeError, AttributeError):
                continue  # a broken line is the dataset readers' to report, not a count's
            if received is not None and received > since:
                count += 1
    return count


def last_training(manifest_path: Path) -> dict | None:
    """The newest manifest version (what the last successful training published): version, created_at, whether
    the gate promoted it, and the version serving now (`current`), so the page can say both in one line."""
    try:
        manifest = read_manifest(manifest_path)
    except ManifestError:
        return None
    dated = [
        (when, version, entry.get("created_at"))
        for version, entry in manifest["versions"].items()
        if (when := _parse_time(entry.get("created_at"))) is not None
    ]
    if not dated:
        return None
    _, version, created_at = max(dated)
    return {
        "version": version,
        "created_at": created_at,
        "promoted": bool(manifest["versions"][version].get("promoted")),
        "current": manifest.get("current"),
        "candidate": (manifest.get("candidate") or {}).get("version"),
    }


# The page and its status; create_app mounts its static files (PLAYGROUND_DIR) at /playground/static.
router = APIRouter(include_in_schema=False)


@router.get("/playground")
def playground_page():
    return FileResponse(PLAYGROUND_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/playground/")
def playground_slash():
    return RedirectResponse("/playground", status_code=308)


@router.get("/playground/status")
async def playground_status(request: Request, settings: ForgeSettings = Depends(deps.settings)):
    try:
        deps.require_admin(request)
        admin = "ok"
    except APIError:
        admin = "token_required"
    trained = await run_in_threadpool(last_training, settings.paths.manifest)
    since = _parse_time(trained["created_at"]) if trained else None
    count = await run_in_threadpool(interactions_since, settings.paths.interactions, since)
    return {"last_training": trained, "interactions_since_training": count, "admin": admin}
