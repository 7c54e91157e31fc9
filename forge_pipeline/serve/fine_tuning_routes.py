"""The routes of OpenAI's fine-tuning jobs resource; what each does (launching the Dagster run, the job records,
OpenAI's hyperparameters) is serve/fine_tuning.py's. Every route needs the admin token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from forge_pipeline.serve import dependencies as deps
from forge_pipeline.serve.fine_tuning import FineTuningJobs
from forge_pipeline.serve.protocol import JobRequest

router = APIRouter(dependencies=[Depends(deps.require_admin)])


@router.post("/v1/fine_tuning/jobs")
def create_job(body: JobRequest, jobs: FineTuningJobs = Depends(deps.fine_tuning_jobs)):
    return jobs.create(body)


@router.get("/v1/fine_tuning/jobs")
def list_jobs(after: str | None = None, limit: int = 20, jobs: FineTuningJobs = Depends(deps.fine_tuning_jobs)):
    return jobs.list_jobs(after, limit)


@router.get("/v1/fine_tuning/jobs/{job_id}")
def retrieve_job(job_id: str, jobs: FineTuningJobs = Depends(deps.fine_tuning_jobs)):
    return jobs.retrieve(job_id)


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(job_id: str, jobs: FineTuningJobs = Depends(deps.fine_tuning_jobs)):
    return jobs.cancel(job_id)


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
def list_events(
    job_id: str, after: str | None = None, limit: int = 20, jobs: FineTuningJobs = Depends(deps.fine_tuning_jobs)
):
    return jobs.events(job_id, after, limit)


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(
    job_id: str, after: str | None = None, limit: int = 10, jobs: FineTuningJobs = Depends(deps.fine_tuning_jobs)
):
    return jobs.checkpoints(job_id, after, limit)
