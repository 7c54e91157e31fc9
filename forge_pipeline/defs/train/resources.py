import sys

import dagster as dg


def train_resources() -> dict:
    # Training runs in its own process (a crash or OOM there cannot take the Dagster process down); the same
    # Pipes protocol runs it as a Ray job on a cluster (runtime.train_on_ray, launch_training below).
    return {"pipes_subprocess_client": dg.PipesSubprocessClient(env={"HF_HUB_OFFLINE": "1"})}


def launch_training(context, settings, subprocess_client: dg.PipesSubprocessClient, module: str, extras: dict):
    """Run the training entrypoint `python -m module` through Dagster Pipes: a local subprocess, or a Ray job
    on the cluster when settings.runtime.train_on_ray (forge_pipeline.runtime.ray_train)."""
    if settings.runtime.train_on_ray:
        from forge_pipeline.runtime.ray_train import run_pipes_job

        return run_pipes_job(context, settings.runtime, module, extras)
    return subprocess_client.run(command=[sys.executable, "-m", module], context=context, extras=extras)


# The folder loader takes a module's Definitions object as everything the module defines: here, its resources.
defs = dg.Definitions(resources=train_resources())
