"""`forge serve`: the HTTP server (uvicorn) on the manifest's current model version."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option(None, help="Bind address (default: serve.host, loopback)."),
        port: int = typer.Option(None, help="Port (default: serve.port)."),
        data_root: Path = typer.Option(None, help="Data root holding serve/adapter_manifest.json."),
    ) -> None:
        """Serve the promoted model: OpenAI-compatible API, hot-swapping when the manifest changes."""
        import uvicorn

        from forge_pipeline.serve.app import create_app
        from forge_pipeline.settings import load_settings

        settings = load_settings(**({"data_root": data_root} if data_root else {}))
        settings.paths.ensure()
        uvicorn.run(
            create_app(settings),
            host=host or settings.serve.host,
            port=port or settings.serve.port,
            log_level="info",
            timeout_graceful_shutdown=settings.serve.shutdown_timeout_s,
        )
