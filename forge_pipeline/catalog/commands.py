"""`forge datasets`: list the dataset catalog's versions."""

from __future__ import annotations

import typer

from forge_pipeline.cli_root import settings_from


def register(app: typer.Typer) -> None:
    @app.command()
    def datasets(ctx: typer.Context) -> None:
        """List dataset versions (oldest first): id, parent, train/validation counts, then each version's path."""
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from forge_pipeline.catalog.versions import catalog_file, list_versions
        from forge_pipeline.records import escape_control

        settings = settings_from(ctx)
        versions = list_versions(settings)
        if not versions:
            typer.echo(f"no dataset versions in {catalog_file(settings)}; materialize dataset_version first")
            return
        table = Table("version", "created", "parent", "train", "validation")
        for v in versions:
            cells = (
                v["version_id"],
                str(v["created_at"])[:19],
                v["parent"],
                v["counts"]["train"],
                v["counts"]["validation"],
            )
            table.add_row(*(Text(escape_control(cell)) for cell in cells))  # shown as written, never as markup
        console = Console()
        console.print(table)
        # Paths go below the table, one whole line each: a table column is cut or folded to the terminal's
        # width, and a path split over lines cannot be copied.
        for v in versions:
            console.print(escape_control(f"{v['version_id']}  {v['path']}"), markup=False, soft_wrap=True)
