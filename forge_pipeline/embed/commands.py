"""`forge search "query"`: the nearest notes and interactions in the current embedding index."""

from __future__ import annotations

import typer

from forge_pipeline.cli_root import settings_from


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        ctx: typer.Context,
        query: str = typer.Argument(..., help="What to look for, in plain words."),
        k: int = typer.Option(5, "-k", "--top", min=1, max=100, help="How many results."),
        source: str | None = typer.Option(None, help="Only this source: vault, conversation, interaction, import."),
    ) -> None:
        """Search your notes and interactions (embedding_index) and print a table of the best matches."""
        import os

        if not query.strip():
            typer.echo(
                'search: the query is empty; say what to look for, e.g. forge search "sourdough starter"', err=True
            )
            raise typer.Exit(2)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from forge_pipeline.embed.backends import shared_backend
        from forge_pipeline.embed.search import search as search_index
        from forge_pipeline.embed.store import index_root, load_current
        from forge_pipeline.records import escape_control

        settings = settings_from(ctx)
        version = load_current(index_root(settings.data_root))  # before the model: no index, no wait
        backend = shared_backend(settings.embed, settings.prepare.dedup.embedding_model)
        # Loading the model (torch and sentence-transformers, or llama.cpp) is most of a search's time: say so
        # on stderr instead of showing the libraries' progress bars and load reports.
        with Console(stderr=True).status(f"loading the embedding model {backend.name} (a few seconds)…"):
            _quiet_model_loading(backend)
            results = search_index(version, backend, query, k, source)
        if not results:
            typer.echo(f"no results in index version {version.meta['version_id']}")
            return
        table = Table(
            "#",
            "score",
            "source",
            "where",
            "text",
            title=f"index {version.meta['version_id']} ({version.meta['model']}, {version.meta['chunks']} chunks)",
        )
        for hit in results:
            where = hit["source_path"] or hit["conversation_id"] or hit["example_id"]
            if hit["heading"]:
                where += f" # {hit['heading']}"
            text = hit["text"]
            if text.startswith("system: "):  # a short example's chunk is the dedup text, system prompt first
                text = text.split("\n", 1)[-1]
            text = " ".join(text.split())
            text = text if len(text) <= 100 else text[:99] + "…"
            # Text cells: "[bold]" in a note is shown, not parsed as markup; escape_control: ESC is shown, not obeyed.
            table.add_row(
                str(hit["rank"]),
                f"{hit['score']:.3f}",
                *(Text(escape_control(cell)) for cell in (hit["source"] or "", where, text)),
            )
        Console().print(table)


def _quiet_model_loading(backend) -> None:
    """transformers' "Loading weights" bar and load report are for people debugging models, not for a search."""
    if getattr(backend, "backend", None) == "sentence-transformers":
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
