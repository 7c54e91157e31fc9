"""Training as a Ray job through dagster-ray's Pipes client (`runtime.train_on_ray`).

The job runs the same entrypoint as the local Pipes subprocess (`python -m forge_pipeline.train.pipes_entry`,
or the DPO one); dagster-ray submits it with the Pipes bootstrap variables in its runtime_env and reads the
Pipes messages back from the job's logs, so logs, metrics and the materialization arrive exactly as from the
subprocess. The job's files (adapter, MLflow run) land under the data root, which the cluster must share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forge_pipeline.runtime.config import RuntimeSettings
from forge_pipeline.runtime.ray_cluster import require_ray

if TYPE_CHECKING:  # dagster-ray is the optional `ray` extra, imported where a job is submitted
    from dagster_ray.core.pipes import SubmitJobParams


def run_pipes_job(context, runtime: RuntimeSettings, module: str, extras: dict):
    """Submit `python -m module` as a Ray job and wait for it; returns the Pipes invocation (as
    PipesSubprocessClient.run does). A failed job raises with the job's message."""
    require_ray()
    from dagster_ray import PipesRayJobClient

    client = PipesRayJobClient(address=runtime.ray_dashboard_url, poll_interval=0.5)
    params: SubmitJobParams = {
        "entrypoint": f"{runtime.ray_train_python} -m {module}",
        "runtime_env": {"env_vars": {"HF_HUB_OFFLINE": "1"}},
    }
    if runtime.ray_train_gpus:
        params["entrypoint_num_gpus"] = runtime.ray_train_gpus
    return client.run(context=context, submit_job_params=params, extras=extras)
