from typing import Literal

from pydantic import Field, model_validator

from forge_pipeline.section import Section


class RuntimeSettings(Section):
    """The execution engine. `local` runs everything in this process; `ray` runs PII analysis and embedding as
    Ray Data `map_batches` over actor pools (and `forge serve --ray` as Ray Serve replicas). Outputs do not
    depend on the engine."""

    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(
        default=None,
        description="Ray cluster to join ('ray://head:10001', 'auto' or 'host:6379'); None starts a "
        "local Ray instance in this process.",
    )
    ray_workers: int = Field(default=2, gt=0, description="Actors in each Ray Data actor pool (analyzer, encoder).")
    ray_worker_cpus: float = Field(default=1.0, gt=0, description="CPUs Ray reserves for each pool actor.")
    ray_batch_size: int = Field(default=64, gt=0, description="Texts per map_batches batch sent to an actor.")
    # `forge serve --ray` (forge_pipeline.runtime.ray_serve)
    serve_min_replicas: int = Field(default=1, gt=0, description="Serve replicas (or the autoscaling floor).")
    serve_max_replicas: int | None = Field(
        default=None, gt=0, description="Autoscaling ceiling; None or equal to serve_min_replicas: a fixed count."
    )
    serve_target_ongoing_requests: float = Field(
        default=2.0, gt=0, description="Autoscaling target: in-flight requests per replica."
    )
    serve_max_ongoing_requests: int = Field(
        default=2,
        gt=0,
        description="Requests a replica accepts at once. llama.cpp generates one at a time, so more would only "
        "queue inside the replica; beyond this Serve sends requests to another replica.",
    )
    serve_replica_cpus: float = Field(default=1.0, gt=0, description="CPUs Ray reserves for each replica.")

    # Training as a Ray job (forge_pipeline.runtime.ray_train, dagster-ray's Pipes client)
    train_on_ray: bool = Field(
        default=False,
        description="Run lora_adapter / preference_adapter training as a Ray job on ray_dashboard_url instead "
        "of a local subprocess (logs, metrics and the materialization come back through Dagster Pipes alike).",
    )
    ray_dashboard_url: str = Field(
        default="http://127.0.0.1:8265", description="The Ray cluster's job submission address (its dashboard)."
    )
    ray_train_gpus: float = Field(default=0.0, ge=0, description="GPUs the training job's entrypoint reserves.")
    ray_train_python: str = Field(
        default="python", description="The Python that runs the training entrypoint on the cluster (the image's)."
    )

    @model_validator(mode="after")
    def _replica_bounds(self):
        if self.serve_max_replicas is not None and self.serve_max_replicas < self.serve_min_replicas:
            raise ValueError(
                f"serve_max_replicas ({self.serve_max_replicas}) is below serve_min_replicas ({self.serve_min_replicas})"
            )
        return self
