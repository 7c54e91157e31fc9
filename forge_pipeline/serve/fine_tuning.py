"""OpenAI's fine-tuning jobs resource (the routes: fine_tuning_routes.py; what they do: FineTuningJobs here): `POST /v1/fine_tuning/jobs`, `GET /v1/fine_tuning/jobs`,
`GET /v1/fine_tuning/jobs/{id}`, `POST /v1/fine_tuning/jobs/{id}/cancel`, `GET /v1/fine_tuning/jobs/{id}/events`,
`GET /v1/fine_tuning/jobs/{id}/checkpoints`.

A job is a Dagster run of the retrain job (serve.fine_tuning_job), launched through Dagster's GraphQL API
like every run the server starts (serve/dagster_client.py, dagster-graphql's client): the chain re-reads every source, the uploaded
files included (see files_routes.py), trains, evaluates, exports and publishes a manifest version. That version
is the job's `fine_tuned_model`, which chat and completion requests accept as `model`.

Hyperparameters, in OpenAI's top-level `hyperparameters` or its newer `method` form
(`{"type": "supervised", "supervised": {"hyperparameters": {...}}}`), and `seed` become the run config of the
`lora_adapter` asset (its LoraAdapterConfig, the launchpad's per-run overrides): `n_epochs` ->
`num_train_epochs`, `batch_size` -> `per_device_train_batch_size`, `learning_rate_multiplier` x the
`train.learning_rate` setting -> `learning_rate`, `seed` -> `seed`. "auto" (or leaving one out) keeps the
`train.*` setting. The job object shows the values the run trains with, as OpenAI's does. A value outside
OpenAI's ranges, or a method other than supervised, is a 400 naming the parameter. `training_file` may be omitted
(Forge's extension, the playground's "train now"): the run trains on the sources as they are.

`model` is what OpenAI's is: the model to fine-tune. 'forge' (or the configured base model's name) trains from
the base on the whole dataset version; a published version, or 'current' (the serving one), is trained further,
as OpenAI fine-tunes a fine-tuned model: its adapter continues on the examples new since its dataset version
beside a replay of older ones (`continue_from` in the lora_adapter config, train/teach.py), minutes on a CPU
instead of a full run. "Train now" asks for 'current'. Job records live under
<data_root>/serve/fine_tuning/.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from forge_pipeline.atomic import write_json_atomic
from forge_pipeline.export.manifest import ManifestError, read_manifest
from forge_pipeline.serve.errors import APIError, invalid, unsupported
from forge_pipeline.serve.files_routes import FileStore, page
from forge_pipeline.serve.protocol import JobRequest

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


# OpenAI's hyperparameter -> (the LoraAdapterConfig field it sets, its type, OpenAI's accepted range).
HYPERPARAMETERS = {
    "n_epochs": ("num_train_epochs", int, 1, 50),
    "batch_size": ("per_device_train_batch_size", int, 1, 256),
    "learning_rate_multiplier": ("learning_rate", float, 0.0, None),  # > 0; multiplies train.learning_rate
}
TRAINING_ASSET = "lora_adapter"  # the asset whose config (defs/train/assets.py LoraAdapterConfig) a job sets
METHODS = ("supervised", "dpo", "reinforcement")
BASE_NAMES = ("forge",)  # with train.base_model: the job trains from the base model
CURRENT = "current"  # the serving version: the job continues it (train.continue_from)


def _number(param: str, value, kind: type, low: float, high: float | None):
    """One hyperparameter value: "auto" (None: keep the setting) or a number in OpenAI's range."""
    if value is None or value == "auto":
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (kind is int and value != int(value)):
        raise invalid(
            f"{param} must be 'auto' or {'an integer' if kind is int else 'a number'}, got {value!r}",
            param=param,
            code="invalid_hyperparameter",
        )
    value = kind(value)
    if (kind is int and value < low) or (kind is float and value <= low) or (high is not None and value > high):
        limits = f"between {low} and {high}" if high is not None else f"greater than {low}"
        raise invalid(f"{param} must be {limits}, got {value}", param=param, code="invalid_hyperparameter")
    return value


def requested_hyperparameters(body: JobRequest) -> dict[str, int | float | None]:
    """OpenAI's hyperparameters from either form, checked: {name: value, or None for "auto"}."""
    given, prefix = body.hyperparameters, "hyperparameters"
    if body.method is not None:
        kind = body.method.get("type")
        if kind != "supervised":
            why = "only supervised fine-tuning (SFT on the dataset version) is run by this server"
            if kind not in METHODS:
                why = f"method.type must be one of {', '.join(METHODS)}"
            raise invalid(f"method.type {kind!r} is not supported: {why}", param="method.type")
        unknown = set(body.method) - {"type", "supervised"}
        if unknown:
            raise invalid(f"Unrecognized request argument supplied: method.{sorted(unknown)[0]}", param="method")
        supervised = body.method.get("supervised") or {}
        if not isinstance(supervised, dict) or set(supervised) - {"hyperparameters"}:
            raise invalid("method.supervised takes only 'hyperparameters'", param="method.supervised")
        if supervised.get("hyperparameters") is not None:
            if given is not None:
                raise invalid(
                    "give hyperparameters once: in method.supervised.hyperparameters (current) or the deprecated "
                    "top-level hyperparameters, not both",
                    param="hyperparameters",
                )
            given, prefix = supervised["hyperparameters"], "method.supervised.hyperparameters"
    given = given or {}
    if not isinstance(given, dict):
        raise invalid(f"{prefix} must be an object", param=prefix)
    for name in given:
        if name not in HYPERPARAMETERS:
            raise invalid(
                f"Unrecognized request argument supplied: {prefix}.{name} (known: {', '.join(HYPERPARAMETERS)})",
                param=f"{prefix}.{name}",
            )
    return {
        name: _number(f"{prefix}.{name}", given.get(name), kind, low, high)
        for name, (_, kind, low, high) in HYPERPARAMETERS.items()
    }


def _epoch(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value / 1000) if value > 1e11 else int(value)  # Dagster gives seconds; events milliseconds
    try:
        return int(datetime.fromisoformat(str(value)).timestamp())
    except ValueError:
        return None


class FineTuningJobs:
    """The jobs' records (<data_root>/serve/fine_tuning/) and their Dagster runs: what each route of
    fine_tuning_routes.py does (one per app, in `app.state.fine_tuning`)."""

    def __init__(self, settings, dagster, files: FileStore):
        self.settings = settings
        self.dagster = dagster
        self.files = files
        self.train = settings.train
        self.jobs_dir = settings.paths.manifest.parent / "fine_tuning"
        self.manifest_path = settings.paths.manifest
        self.job_name = settings.serve.fine_tuning_job

    def training_config(self, requested: dict, seed: int | None) -> tuple[dict, dict]:
        """(the hyperparameters the job object shows, the LoraAdapterConfig values the run is launched with)."""
        overrides = {}
        for name, value in requested.items():
            if value is not None:
                field = HYPERPARAMETERS[name][0]
                if name == "learning_rate_multiplier":
                    value = value * self.train.learning_rate
                overrides[field] = float(value) if field == "num_train_epochs" else value  # a float setting
        if seed is not None:
            overrides["seed"] = seed
        epochs = requested["n_epochs"] if requested["n_epochs"] is not None else self.train.num_train_epochs
        shown = {
            "n_epochs": int(epochs) if float(epochs).is_integer() else epochs,
            "batch_size": requested["batch_size"] or self.train.per_device_train_batch_size,
            "learning_rate_multiplier": requested["learning_rate_multiplier"] or 1.0,
        }
        return shown, overrides

    def public(self, record: dict) -> dict:
        """The job as a client sees it: the Dagster run id stays inside; a link to the run's page is given
        (a field of Forge's own beside OpenAI's, which SDKs keep as an extra attribute)."""
        out = {k: v for k, v in record.items() if k != "run_id"}
        out["dagster_run_url"] = f"{self.settings.serve.dagster_url.rstrip('/')}/runs/{record['run_id']}"
        return out

    def job_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def load(self, job_id: str) -> dict:
        if not job_id.startswith("ftjob-") or "/" in job_id or not self.job_path(job_id).is_file():
            raise APIError(
                404, f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="fine_tuning_job_not_found"
            )
        return json.loads(self.job_path(job_id).read_text(encoding="utf-8"))

    def produced_version(self, record: dict) -> tuple[str | None, dict]:
        """The manifest version the run published (the newest one created after the job started) and its entry."""
        try:
            manifest = read_manifest(self.manifest_path)
        except ManifestError:
            return None, {}
        newer = [
            (entry.get("created_at") or "", version)
            for version, entry in manifest["versions"].items()
            if (_epoch(entry.get("created_at")) or 0) >= record["created_at"]
        ]
        version = max(newer)[1] if newer else None
        return version, (manifest["versions"][version] if version else {})

    def refresh(self, record: dict) -> dict:
        """The job as OpenAI shows it, its status read from Dagster (a final status is kept)."""
        if record["status"] not in FINAL:
            status = STATUS.get(self.dagster.status(record["run_id"]), "running")
            if status in FINAL:
                record["finished_at"] = _epoch(self.dagster.end_time(record["run_id"])) or int(time.time())
                if status == "succeeded":
                    record["fine_tuned_model"], entry = self.produced_version(record)
                    record["trained_tokens"] = entry.get("trained_tokens")
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
            write_json_atomic(self.job_path(record["id"]), record)
        return self.public(record)

    def continue_from(self, model: str) -> str | None:
        """The lora_adapter `continue_from` a job's `model` asks for. As with OpenAI, fine-tuning a fine-tuned
        model continues it: a published version, or `current` (the serving one; the base while none serves),
        is trained further on what is new since its dataset version (train/teach.py). The base model's names
        train from the base ("" overrides a `train.continue_from` setting)."""
        if model in BASE_NAMES or model == self.settings.train.base_model:
            return "" if self.settings.train.continue_from else None
        if model == CURRENT:
            return CURRENT
        try:
            entry = read_manifest(self.manifest_path)["versions"].get(model)
        except ManifestError:
            entry = None
        if entry is None:
            raise invalid(
                f"model {model!r} cannot be fine-tuned here: use 'forge' (the configured base, "
                f"{self.settings.train.base_model or 'the demo model'}), 'current' or a published version",
                param="model",
                code="model_not_available",
            )
        if not entry.get("adapter_dir"):
            raise invalid(
                f"model {model!r} records no adapter folder (published by an older Forge), so it cannot be trained "
                "further; fine-tune 'forge' (from the base) instead",
                param="model",
                code="model_not_available",
            )
        return model

    def create(self, body: JobRequest) -> dict:
        parent = self.continue_from(body.model)
        for param in ("training_file", "validation_file"):
            file_id = getattr(body, param)
            if file_id is not None and not self.files.exists(file_id):
                raise invalid(
                    f"{param} {file_id!r} is not an uploaded file (POST /v1/files first)",
                    param=param,
                    code="invalid_file",
                )
        requested = requested_hyperparameters(body)
        if body.integrations:
            raise unsupported("integrations", "runs are tracked in this server's MLflow and Dagster")
        shown, overrides = self.training_config(requested, body.seed)
        if parent is not None:
            overrides["continue_from"] = parent
        run_config = {"ops": {TRAINING_ASSET: {"config": overrides}}} if overrides else None
        created = int(time.time())
        run_id = self.dagster.launch(self.job_name, run_config)
        record = {
            "id": f"ftjob-{run_id}",
            "object": "fine_tuning.job",
            "run_id": run_id,
            "created_at": created,
            "model": body.model,
            "training_file": body.training_file,
            "validation_file": body.validation_file,
            "hyperparameters": shown,
            "user_provided_suffix": body.suffix,
            "metadata": body.metadata,
            "seed": body.seed if body.seed is not None else self.train.seed,
            # A run just launched is queued (or starting, which OpenAI also calls queued); the next read asks Dagster.
            "status": "queued",
            "fine_tuned_model": None,
            "finished_at": None,
            "error": None,
            "organization_id": "forge",
            "result_files": [],
            "trained_tokens": None,
            "estimated_finish": None,
            "integrations": None,
            "method": {"type": "supervised", "supervised": {"hyperparameters": shown}},
        }
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.job_path(record["id"]), record)
        return self.public(record)

    def list_jobs(self, after: str | None, limit: int) -> dict:
        records = (
            [json.loads(p.read_text(encoding="utf-8")) for p in self.jobs_dir.glob("ftjob-*.json")]
            if self.jobs_dir.is_dir()
            else []
        )
        records.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return page([self.public(r) for r in records], after, limit)

    def retrieve(self, job_id: str) -> dict:
        return self.refresh(self.load(job_id))

    def cancel(self, job_id: str) -> dict:
        record = self.load(job_id)
        refreshed = self.refresh(record)
        if refreshed["status"] in FINAL:
            raise invalid(f"job {job_id} is already {refreshed['status']}", param="fine_tuning_job_id")
        self.dagster.terminate(record["run_id"])
        record.update(status="cancelled", finished_at=int(time.time()))
        write_json_atomic(self.job_path(job_id), record)
        return self.public(record)

    def events(self, job_id: str, after: str | None, limit: int) -> dict:
        record = self.load(job_id)
        events = self.dagster.events(record["run_id"])
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

    def checkpoints(self, job_id: str, after: str | None, limit: int) -> dict:
        job = self.refresh(self.load(job_id))
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
