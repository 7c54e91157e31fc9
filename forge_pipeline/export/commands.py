"""`forge rollback` and `forge models`: inspect and re-point the adapter manifest serving watches."""

from __future__ import annotations

import typer

from forge_pipeline.cli_root import settings_from


def register(app: typer.Typer) -> None:
    @app.command()
    def rollback(
        ctx: typer.Context,
        version: str | None = typer.Argument(
            None, help="Version to make current (default: the previously promoted one)."
        ),
    ) -> None:
        """Re-point the adapter manifest's current version (files are verified against their sha256 first)."""
        from forge_pipeline.export.manifest import read_manifest
        from forge_pipeline.export.manifest import rollback as do_rollback

        settings = settings_from(ctx)
        before = read_manifest(settings.paths.manifest)["current"]
        manifest = do_rollback(settings.paths.manifest, version)
        earlier = manifest["history"][:-1]
        further = f"`forge rollback` again goes back to {earlier[-1]}" if earlier else "no earlier version left"
        typer.echo(
            f"current: {manifest['current']} (was {before}; promotion history "
            f"{' -> '.join(manifest['history'])}; {further})"
        )

    @app.command()
    def models(ctx: typer.Context) -> None:
        """List the manifest's versions: promoted, current, evaluation loss and files."""
        from rich.console import Console
        from rich.table import Table

        from forge_pipeline.export.manifest import read_manifest
        from forge_pipeline.export.publish import models_table

        settings = settings_from(ctx)
        rows = models_table(read_manifest(settings.paths.manifest))
        if not rows:
            typer.echo(f"no versions in {settings.paths.manifest}")
            return
        table = Table(title=str(settings.paths.manifest))
        for column in ("version", "current", "promoted", "tuned loss", "base loss", "dataset", "files"):
            table.add_column(column)
        for row in rows:
            loss = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
            table.add_row(
                row["version"],
                "*" if row["current"] else "",
                "yes" if row["promoted"] else "no",
                loss(row["tuned_loss"]),
                loss(row["base_loss"]),
                str(row["dataset_version"] or "-"),
                "\n".join(f"{role}: {path}" for role, path in row["files"].items() if path),
            )
        Console(width=200).print(table)
