"""`forge compare`, `forge promote` and `forge candidate`: run and close an A/B test between model versions."""

from __future__ import annotations

import typer

from forge_pipeline.cli_root import settings_from


def register(app: typer.Typer) -> None:
    @app.command()
    def compare(
        ctx: typer.Context,
        version_a: str = typer.Argument(..., help="A model version in the manifest, e.g. v0002."),
        version_b: str = typer.Argument(..., help="The version to compare it with."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """Win rate, ratings, latency and tokens served, and MLflow evaluation figures of two versions."""
        from forge_pipeline.export.manifest import read_manifest
        from forge_pipeline.export.publish import dumps
        from forge_pipeline.feedback.compare import compare_versions
        from forge_pipeline.feedback.pairs import read_interaction_records
        from forge_pipeline.records import Quarantine
        from forge_pipeline.serve.interactions import ServedLog, served_log_dir

        settings = settings_from(ctx)
        unreadable = Quarantine("compare")  # a bad line is skipped (and counted), as the pipeline does
        interactions = [r["record"] for r in read_interaction_records(settings.interaction_dirs, unreadable)]
        if unreadable.rows:
            typer.echo(
                f"note: skipped {len(unreadable.rows)} unreadable interaction line(s): {unreadable.reason_counts()}",
                err=True,
            )
        figures = compare_versions(
            version_a,
            version_b,
            read_manifest(settings.paths.manifest),
            ServedLog(served_log_dir(settings)).read_all(),
            interactions,
            settings.tracking_uri,
        )
        if as_json:
            typer.echo(dumps(figures))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("figure", version_a, version_b, title=f"{version_a} vs {version_b}")
        for key in figures[version_a]:
            show = lambda v: "-" if v is None else str(v)  # noqa: E731
            table.add_row(key, show(figures[version_a][key]), show(figures[version_b][key]))
        Console(width=160).print(table)

    @app.command()
    def promote(
        ctx: typer.Context,
        version: str | None = typer.Argument(None, help="The candidate version (default: whichever is the candidate)."),
    ) -> None:
        """Make the A/B candidate the current version (all traffic); the server hot-swaps to it."""
        from forge_pipeline.export.manifest import promote_candidate

        manifest = promote_candidate(settings_from(ctx).paths.manifest, version)
        typer.echo(f"current: {manifest['current']} (candidate cleared)")

    @app.command()
    def candidate(
        ctx: typer.Context,
        version: str | None = typer.Argument(None, help="Version to A/B test against the current one."),
        share: float | None = typer.Option(
            None, help="Share of chat requests (0-1]; default feedback.candidate_traffic_share."
        ),
        clear: bool = typer.Option(False, "--clear", help="Stop the A/B test (all traffic to current)."),
    ) -> None:
        """Name the A/B candidate in the manifest (or clear it)."""
        from forge_pipeline.export.manifest import set_candidate

        settings = settings_from(ctx)
        if not clear and not version:
            typer.echo("candidate: give a VERSION or --clear", err=True)
            raise typer.Exit(2)
        manifest = set_candidate(
            settings.paths.manifest,
            None if clear else version,
            share if share is not None else settings.feedback.candidate_traffic_share,
        )
        typer.echo(f"current: {manifest['current']}, candidate: {manifest['candidate']}")
