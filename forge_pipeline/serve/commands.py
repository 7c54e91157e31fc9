"""`forge serve`: the HTTP server (uvicorn) on the manifest's current model version; `--ray` runs the same app as
Ray Serve replicas (forge_pipeline.runtime.ray_serve, the optional `ray` extra)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option(None, help="Bind address (default: serve.host, loopback)."),
        port: int = typer.Option(None, help="Port (default: serve.port)."),
        data_root: Path = typer.Option(None, help="Data root holding serve/adapter_manifest.json."),
        ray: bool = typer.Option(
            False, "--ray", help="Serve as Ray Serve replicas on runtime.ray_address (needs the `ray` extra)."
        ),
        replicas: int = typer.Option(
            None, min=1, help="With --ray: this many replicas (default: runtime.serve_min/max_replicas)."
        ),
    ) -> None:
        """Serve the promoted model: OpenAI-compatible API, hot-swapping when the manifest changes."""
        from forge_pipeline.settings import load_settings

        settings = load_settings(**({"data_root": data_root} if data_root else {}))
        settings.paths.ensure()
        if replicas is not None and not ray:
            raise typer.BadParameter("--replicas needs --ray (a single server is one process)", param_hint="--replicas")
        if ray:
            from forge_pipeline.runtime.ray_cluster import require_ray

            require_ray()
            from forge_pipeline.runtime.ray_serve import run

            run(settings, replicas, host or settings.serve.host, port or settings.serve.port)
            return
        import uvicorn

        from forge_pipeline.serve.app import create_app

        uvicorn.run(
            create_app(settings),
            host=host or settings.serve.host,
            port=port or settings.serve.port,
            log_level="info",
            timeout_graceful_shutdown=settings.serve.shutdown_timeout_s,
        )
