"""OpenAI's fine-tuning jobs resource: `POST /v1/fine_tuning/jobs`, `GET /v1/fine_tuning/jobs`,
`GET /v1/fine_tuning/jobs/{id}`, `POST /v1/fine_tuning/jobs/{id}/cancel`, `GET /v1/fine_tuning/jobs/{id}/events`,
`GET /v1/fine_tuning/jobs/{id}/checkpoints`.

A job is a Dagster run of the retrain job (serve.fine_tuning_job), launched through Dagster's GraphQL API
like every run the server starts (serve/dagster_client.py): the chain re-reads every source, the uploaded
files included (see files_routes.py), trains, evaluates, exports and publishes a manifest version. That version
is the job's `fine_tuned_model`, which chat and completion requests accept as `model`.

Training hyperparameters are the server's settings (`train.*`); a job asks for the settings' values or "auto",
anything else is a 400 naming the hyperparameter (never silently ignored). `training_file` may be omitted (Forge's
extension, the playground's "train now"): the run retrains on the sources as they are. Job records live under
<data_root>/serve/fine_tuning/.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.export.manifest import ManifestError, read_manifest
from forge_pipeline.serve.dagster_client import DagsterError
from forge_pipeline.serve.errors import APIError, invalid, unsupported
from forge_pipeline.serve.files_routes import FileStore, page

# Dagster run status -> OpenAI job status. `validating_files` is the job's state while its files are checked,
# before the run is launched.
STATUS = {
    "QUEUED": "queued",
    "NOT_STARTED": "queued",
    "MANAGED": "queued",
    "STARTING": "queued",
    "STARTED": "running",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELING": "cancelled",
    "CANCELED": "cancelled",
}
FINAL = ("succeeded", "failed", "cancelled")
LEVELS = {"DEBUG": "info", "INFO": "info", "WARNING": "warn", "ERROR": "error", "CRITICAL": "error"}


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: int | Literal["auto"] | None = None
    batch_size: int | Literal["auto"] | None = None
    learning_rate_multiplier: float | Literal["auto"] | None = None


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    # Forge's extension: without a training file the job retrains on the sources as they are (notes, interactions,
    # files uploaded earlier), which is what the playground's "train now" asks for.
    training_file: str | None = None
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None
    method: dict[str, Any] | None = None


def _epoch(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value / 1000) if value > 1e11 else int(value)  # Dagster gives seconds; events milliseconds
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def fine_tuning_router(
    *,
    dagster,
    files: FileStore,
    jobs_dir: Path,
    manifest_path: Path,
    model_host,
    settings,
    job_name: str,
    require_admin,
) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_admin)])
    train = settings.train
    effective = {
        "n_epochs": train.num_train_epochs,
        "batch_size": train.per_device_train_batch_size,
        "learning_rate_multiplier": 1.0,
    }

    def job_path(job_id: str) -> Path:
        return jobs_dir / f"{job_id}.json"

    def load(job_id: str) -> dict:
        if not job_id.startswith("ftjob-") or "/" in job_id or not job_path(job_id).is_file():
            raise APIError(
                404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="fine_tuning_job_not_found"
            )
        return json.loads(job_path(job_id).read_text(encoding="utf-8"))

    def dagster_call(fn, *args):
        try:
            return fn(*args)
        except DagsterError as err:
            raise APIError(err.status, str(err)) from None

    def produced_version(record: dict) -> str | None:
        """The manifest version the run published: the newest one created after the job started."""
        try:
            manifest = read_manifest(manifest_path)
        except ManifestError:
            return None
        newer = [
            (entry.get("created_at") or "", version)
            for version, entry in manifest["versions"].items()
            if (_epoch(entry.get("created_at")) or 0) >= record["created_at"]
        ]
        return max(newer)[1] if newer else None

    def refresh(record: dict) -> dict:
        """The job as OpenAI shows it, its status read from Dagster (a final status is kept)."""
        if record["status"] not in FINAL:
            run = dagster_call(dagster.run, record["run_id"])
            status = STATUS.get(run["status"], "running")
            if status in FINAL:
                record["finished_at"] = _epoch(run.get("endTime")) or int(time.time())
                if status == "succeeded":
                    record["fine_tuned_model"] = produced_version(record)
                    if record["fine_tuned_model"] is None:
                        status = "failed"
                        record["error"] = {
                            "code": "no_model_published",
                            "param": None,
                            "message": "the run succeeded but published no manifest version "
                            "(the evaluation gate may have refused it)",
                        }
                elif status == "failed":
                    record["error"] = {
                        "code": "run_failed",
                        "param": None,
                        "message": f"Dagster run {record['run_id']} failed; its events say why",
                    }
            record["status"] = status
            write_json_atomic(job_path(record["id"]), record)
        return {k: v for k, v in record.items() if k != "run_id"}

    @router.post("/v1/fine_tuning/jobs")
    def create_job(body: JobRequest):
        if body.model not in ("forge", "current", settings.train.base_model):
            try:
                model_host.resolve(body.model)
            except Exception:
                raise invalid(
                    f"model {body.model!r} cannot be fine-tuned here: use 'forge' (the configured base, "
                    f"{settings.train.base_model or 'the demo model'}) or a served version",
                    param="model",
                    code="model_not_available",
                ) from None
        for param in ("training_file", "validation_file"):
            file_id = getattr(body, param)
            if file_id is not None and not files.exists(file_id):
                raise invalid(
                    f"{param} {file_id!r} is not an uploaded file (POST /v1/files first)",
                    param=param,
                    code="invalid_file",
                )
        for name, value in (body.hyperparameters.model_dump() if body.hyperparameters else {}).items():
            if value not in (None, "auto", effective[name]):
                raise unsupported(
                    f"hyperparameters.{name}",
                    f"this server trains with {name}={effective[name]} (its train settings); send 'auto'",
                )
        if body.seed is not None:
            raise unsupported("seed", "the training seed is the server's setting")
        for name in ("integrations", "method"):
            if getattr(body, name):
                raise unsupported(name)
        created = int(time.time())
        run = dagster_call(dagster.launch, job_name, None)
        record = {
            "id": f"ftjob-{run['runId']}",
            "object": "fine_tuning.job",
            "run_id": run["runId"],
            "created_at": created,
            "model": body.model,
            "training_file": body.training_file,
            "validation_file": body.validation_file,
            "hyperparameters": effective,
            "user_provided_suffix": body.suffix,
            "metadata": body.metadata,
            "seed": 0,
            "status": STATUS.get(run["status"], "queued"),
            "fine_tuned_model": None,
            "finished_at": None,
            "error": None,
            "organization_id": "forge",
            "result_files": [],
            "trained_tokens": None,
            "estimated_finish": None,
            "integrations": None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": effective}},
        }
        jobs_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(job_path(record["id"]), record)
        return {k: v for k, v in record.items() if k != "run_id"}

    @router.get("/v1/fine_tuning/jobs")
    def list_jobs(after: str | None = None, limit: int = 20):
        records = (
            [json.loads(p.read_text(encoding="utf-8")) for p in jobs_dir.glob("ftjob-*.json")]
            if jobs_dir.is_dir()
            else []
        )
        records.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return page([{k: v for k, v in r.items() if k != "run_id"} for r in records], after, limit)

    @router.get("/v1/fine_tuning/jobs/{job_id}")
    def retrieve_job(job_id: str):
        return refresh(load(job_id))

    @router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        record = load(job_id)
        refreshed = refresh(record)
        if refreshed["status"] in FINAL:
            raise invalid(f"job {job_id} is already {refreshed['status']}", param="fine_tuning_job_id")
        dagster_call(dagster.terminate, record["run_id"])
        record.update(status="cancelled", finished_at=int(time.time()))
        write_json_atomic(job_path(job_id), record)
        return {k: v for k, v in record.items() if k != "run_id"}

    @router.get("/v1/fine_tuning/jobs/{job_id}/events")
    def list_events(job_id: str, after: str | None = None, limit: int = 20):
        record = load(job_id)
        events = dagster_call(dagster.events, record["run_id"])
        items = [
            {
                "id": f"ftevent-{record['run_id']}-{index}",
                "object": "fine_tuning.job.event",
                "created_at": _epoch(float(event["timestamp"])) if event.get("timestamp") else record["created_at"],
                "level": LEVELS.get(str(event.get("level")), "info"),
                "message": event.get("message") or event["type"],
                "type": "message",
                "data": {"dagster_event": event["type"], "step": event.get("step")},
            }
            for index, event in enumerate(events)
        ]
        items.reverse()  # newest first, as OpenAI lists them
        return page(items, after, limit)

    @router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def list_checkpoints(job_id: str, after: str | None = None, limit: int = 10):
        job = refresh(load(job_id))
        items = []
        if job["fine_tuned_model"]:
            items.append(
                {
                    "id": f"ftckpt-{job['fine_tuned_model']}",
                    "object": "fine_tuning.job.checkpoint",
                    "created_at": job["finished_at"],
                    "fine_tuned_model_checkpoint": job["fine_tuned_model"],
                    "fine_tuning_job_id": job_id,
                    "metrics": {},
                    "step_number": 0,
                }
            )
        return page(items, after, limit)

    return router
