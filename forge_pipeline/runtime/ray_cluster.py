"""Joining the Ray cluster that `runtime.ray_address` names, with an error that says what to do when Ray is not
installed."""

from __future__ import annotations

from forge_pipeline.runtime.config import RuntimeSettings


def require_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "runtime.engine is 'ray' but Ray is not installed: `pip install -e .[ray]` (or `make ray-setup`), "
            "or set runtime.engine: local"
        ) from None
    return ray


def connect(runtime: RuntimeSettings):
    """ray.init once per process (a later call reuses the connection). The cluster's workers must be able to
    import forge_pipeline: the same image on KubeRay, the inherited environment for a local cluster."""
    ray = require_ray()
    if not ray.is_initialized():
        local = {"include_dashboard": False} if runtime.ray_address is None else {}
        # log_to_driver off: worker logs would interleave with Dagster's; errors still come back as exceptions.
        ray.init(address=runtime.ray_address, log_to_driver=False, **local)
    return ray
