"""`forge serve`: the HTTP server (uvicorn) on the manifest's current model version; `--ray` runs the same app as
Ray Serve replicas (forge_pipeline.runtime.ray_serve, the optional `ray` extra)."""

from __future__ import annotations

import typer

from forge_pipeline.cli_root import settings_from


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        ctx: typer.Context,
        host: str = typer.Option(None, help="Bind address (default: serve.host, loopback)."),
        port: int = typer.Option(None, help="Port (default: serve.port)."),
        ray: bool = typer.Option(
            False, "--ray", help="Serve as Ray Serve replicas on runtime.ray_address (needs the `ray` extra)."
        ),
        replicas: int = typer.Option(
            None, min=1, help="With --ray: this many replicas (default: runtime.serve_min/max_replicas)."
        ),
        verbose: bool = typer.Option(
            False, "--verbose", "-v", help="Show library output (llama.cpp's load lines, warnings) on the terminal."
        ),
    ) -> None:
        """Serve the promoted model: OpenAI-compatible API, hot-swapping when the manifest changes."""
        settings = settings_from(ctx)
        settings.paths.ensure()
        if replicas is not None and not ray:
            raise typer.BadParameter("--replicas needs --ray (a single server is one process)", param_hint="--replicas")
        if ray:
            from forge_pipeline.runtime.ray_cluster import require_ray

            require_ray()
            from forge_pipeline.runtime.ray_serve import run

            run(settings, replicas, host or settings.serve.host, port or settings.serve.port)
            return
        import copy
        import time

        import uvicorn
        from uvicorn.config import LOGGING_CONFIG

        from forge_pipeline.run_log import library_output_to, run_log_path
        from forge_pipeline.serve.app import create_app

        # The server's own lines (started, listening, one per request) on stdout; what llama.cpp and other
        # libraries write to stderr (a line per adapter tensor on load, warnings) in the log file.
        log_config = copy.deepcopy(LOGGING_CONFIG)
        log_config["handlers"]["default"]["stream"] = "ext://sys.stdout"
        log_path = run_log_path(settings.paths.root, f"serve-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"forge serve: library output (llama.cpp, warnings) goes to {log_path}", flush=True)
        with library_output_to(log_path, verbose=verbose, stderr_only=True):
            uvicorn.run(
                create_app(settings),
                host=host or settings.serve.host,
                port=port or settings.serve.port,
                log_level="info",
                log_config=log_config,
                timeout_graceful_shutdown=settings.serve.shutdown_timeout_s,
            )
