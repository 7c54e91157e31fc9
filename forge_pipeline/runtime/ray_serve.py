"""`forge serve --ray`: the same FastAPI app (forge_pipeline.serve.app) as a Ray Serve application of N replicas.

Each replica builds the app in its own process (`serve.ingress` with `__serve_build_asgi_app__`), so it loads
the base GGUF itself and runs the ordinary manifest watcher: a new `current` reaches every replica within
`serve.manifest_poll_s` plus the swap itself (an adapter swap is well under a millisecond; a new base is a
load). Every response still names its version (`x-forge-model-version`), and names the replica that produced
it (`x-forge-replica`); `/health` adds this replica's id and every replica's version, as the replicas report it
to one small named actor each time they load a version.

The manifest and the GGUF files it names must be readable at the same paths on every node (a shared volume on
Kubernetes, deploy/); that is the same condition as for a single server.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import ray
from ray import serve

from forge_pipeline.runtime.ray_cluster import connect
from forge_pipeline.serve.models import ModelHost
from forge_pipeline.settings import ForgeSettings, load_settings

APP_NAME = "forge"
REGISTRY_NAME = "forge-replica-versions"
REGISTRY_NAMESPACE = "forge"
REPLICA_HEADER = "x-forge-replica"


class ReplicaVersions:
    """What each replica serves, as it last reported it: {replica id: {model_version, status, since, ...}}."""

    def __init__(self) -> None:
        self.replicas: dict[str, dict] = {}

    def report(self, replica: str, state: dict) -> None:
        self.replicas[replica] = state

    def forget(self, replica: str) -> None:
        self.replicas.pop(replica, None)

    def all(self) -> dict[str, dict]:
        return dict(self.replicas)


# ray.remote called rather than written as @ray.remote: mypy does not apply a class decorator's type
# (python/mypy#3135), so it would not see the actor class's .options and .remote.
ReplicaVersionsActor = ray.remote(num_cpus=0)(ReplicaVersions)


def replica_registry():
    # Detached: it outlives any one replica (replicas come and go with autoscaling); `forge serve --ray` kills it
    # on exit, and it goes with the cluster otherwise.
    return ReplicaVersionsActor.options(
        name=REGISTRY_NAME, namespace=REGISTRY_NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()


def drop_replica_registry() -> None:
    """Kill the registry actor (after the application is gone; it is detached, so nothing else ends it)."""
    try:
        ray.kill(ray.get_actor(REGISTRY_NAME, namespace=REGISTRY_NAMESPACE))
    except ValueError:  # never created (no replica started)
        pass


class ReplicaModelHost(ModelHost):
    """A ModelHost that tells the registry which version it serves after every reload."""

    def __init__(self, *args, replica: str, registry, **kwargs):
        super().__init__(*args, **kwargs)
        self.replica = replica
        self.registry = registry

    def _report(self) -> None:
        health = super().health()
        swaps = self.swaps
        self.registry.report.remote(
            self.replica,
            {
                "model_version": health["model_version"],
                "status": health["status"],
                "candidate": health["candidate"],
                "error": health["error"],
                "since": swaps[-1]["at"] if swaps else None,  # when this replica switched to the version
                "reported_at": time.time(),
            },
        )

    def reload(self) -> dict:
        result = super().reload()
        self._report()
        return result

    def health(self) -> dict:
        report = super().health()
        report["replica"] = self.replica
        try:
            report["replicas"] = ray.get(self.registry.all.remote(), timeout=5)
        except Exception as err:  # /health must answer even when the registry cannot
            report["replicas"] = None
            report["replicas_error"] = f"{type(err).__name__}: {err}"
        return report

    def close(self) -> None:
        try:
            ray.get(self.registry.forget.remote(self.replica), timeout=5)
        except Exception:  # shutting down: the registry may already be gone
            pass
        super().close()


class _ReplicaHeader:
    """Pure ASGI (streaming responses stay streamed): adds x-forge-replica to every response."""

    def __init__(self, app, replica: str):
        self.app, self.header = app, (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        return await self.app(scope, receive, send_with_header)


@serve.ingress()
class ForgeReplica:
    """One replica: the Forge app with its own ModelHost and manifest watcher."""

    def __init__(self, settings: dict, n_threads: int | None = None):
        # model_validate, not load_settings: the replica serves exactly the settings the deployer resolved,
        # whatever the environment of the node it lands on.
        self.settings = ForgeSettings.model_validate(settings)
        self.n_threads = n_threads

    def __serve_build_asgi_app__(self):
        from forge_pipeline.serve.app import create_app

        settings = self.settings
        settings.paths.ensure()
        replica = serve.get_replica_context().replica_id.unique_id
        host = ReplicaModelHost(
            settings.paths.manifest,
            n_ctx=settings.serve.n_ctx,
            n_threads=self.n_threads,
            embeddings=settings.serve.embeddings,
            router_seed=settings.feedback.router_seed,
            replica=replica,
            registry=replica_registry(),
        )
        app = create_app(settings, host=host)
        app.add_middleware(_ReplicaHeader, replica=replica)
        return app


def forge_application(settings: ForgeSettings, replicas: int | None = None):
    """The bound Serve application: `replicas` fixed replicas, or autoscaling between
    runtime.serve_min_replicas and runtime.serve_max_replicas when replicas is None and the two differ."""
    runtime = settings.runtime
    cpus = runtime.serve_replica_cpus
    options: dict[str, Any] = {
        "name": "ForgeReplica",
        "ray_actor_options": {"num_cpus": cpus},
        "max_ongoing_requests": runtime.serve_max_ongoing_requests,
        # A replica that is not healthy after loading its model is replaced; loading a multi-GB base takes a while.
        "health_check_timeout_s": 60,
    }
    low, high = runtime.serve_min_replicas, runtime.serve_max_replicas
    if replicas is not None or high is None or high == low:
        options["num_replicas"] = replicas if replicas is not None else low
    else:
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": runtime.serve_target_ongoing_requests,
        }
    deployment = serve.deployment(**options)(ForgeReplica)
    return deployment.bind(settings.model_dump(mode="json"), n_threads=max(1, round(cpus)))


def build_app(args: dict[str, str] | None = None):
    """Application builder for a Serve config file (`import_path: forge_pipeline.runtime.ray_serve:build_app`,
    deploy/ray/serve_config.yaml): settings from the node's environment / FORGE_CONFIG; `args` may name a
    `config_file`."""
    args = args or {}
    return forge_application(load_settings(config_file=args.get("config_file")))


def run(settings: ForgeSettings, replicas: int | None, host: str, port: int) -> None:
    """`forge serve --ray`: deploy, then block until Ctrl-C / SIGTERM, then take the application down."""
    connect(settings.runtime)
    own_instance = settings.runtime.ray_address is None  # ray.init started a Ray instance inside this process
    serve.start(http_options={"host": host, "port": port})
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        serve.run(forge_application(settings, replicas), name=APP_NAME, route_prefix="/")
        print(f"forge serve --ray: http://{host}:{port} ({replicas or 'autoscaled'} replicas)", flush=True)
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if own_instance:
            # Serve, the replicas and the registry live in this process's own Ray instance: ending it ends them
            # (a terminal's Ctrl-C may already have stopped part of it, so nothing here waits on it).
            ray.shutdown()
        else:  # a shared cluster: take down only this application
            serve.delete(APP_NAME)
            drop_replica_registry()
