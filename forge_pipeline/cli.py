"""The `forge` command. Heavy libraries are imported inside commands so `forge --help` starts fast.

Each stage adds its own commands from `forge_pipeline/<stage>/commands.py` (a `register(app)` function),
so this file stays a list of entry points, not a home for stage logic.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import warnings
import time
from pathlib import Path

import typer

app = typer.Typer(help="Forge: fine-tune a local LLM on your own vault and conversations.", no_args_is_help=True)

STAGES_WITH_COMMANDS = ("ingest", "prepare", "catalog", "curate", "train", "export", "serve", "embed", "feedback")


def _dagster_home(settings) -> Path:
    """DAGSTER_HOME, defaulting to <data_root>/dagster_home with the repo's dagster.yaml copied in."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.paths.root / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    repo_config = Path(__file__).resolve().parent.parent / "dagster.yaml"
    if not (home / "dagster.yaml").exists() and repo_config.exists():
        (home / "dagster.yaml").write_text(repo_config.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@app.command()
def demo(
    data_root: Path = typer.Option(None, help="Where outputs go (default: settings' data_root)."),
    select: str = typer.Option("*", help="Dagster asset selection, e.g. 'vault_notes+' or '*dataset_version'."),
) -> None:
    """Materialize the whole asset chain on the configured data (the sample data by default)."""
    import dagster as dg
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from forge_pipeline.settings import load_settings

    console = Console()
    settings = load_settings(**({"data_root": data_root} if data_root else {}))
    settings.paths.ensure()
    home = _dagster_home(settings)

    from forge_pipeline.definitions import build_definitions

    definitions = build_definitions(str(settings.data_root))
    job = definitions.resolve_implicit_global_asset_job_def()
    selection = dg.AssetSelection.from_string(select) if select != "*" else dg.AssetSelection.all()
    asset_graph = definitions.resolve_asset_graph()
    selected = sorted(
        key.to_user_string() for key in selection.resolve(asset_graph) if asset_graph.get(key).is_materializable
    )
    instance = dg.DagsterInstance.get()
    console.print(f"[bold]Forge demo[/bold]: {len(selected)} assets, data root {settings.paths.root}, DAGSTER_HOME {home}")

    finished: dict[str, str] = {}
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                instance=instance, asset_selection=[dg.AssetKey.from_user_string(k) for k in selected],
                raise_on_error=False,
                # The stages' own INFO logs, not Dagster's per-event DEBUG lines (the progress display and the
                # UI's run view show those).
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            )
        except Exception as err:  # surfaced below, after the progress display closes
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("materializing", total=len(selected))
        started = time.time()
        worker.start()
        while True:
            was_alive = worker.is_alive()  # read before polling: the last poll always follows the run's end
            worker.join(timeout=1.0)
            with warnings.catch_warnings():
                # Its replacement (fetch_materializations) takes one asset key; this polls all of them, once a
                # second, and the deprecation warning would otherwise bury the progress display.
                warnings.simplefilter("ignore")
                records = instance.get_event_records(dg.EventRecordsFilter(
                    event_type=dg.DagsterEventType.ASSET_MATERIALIZATION, after_timestamp=started), limit=1000)
            for record in records:
                key = record.asset_key.to_user_string()
                if key in selected and key not in finished:
                    finished[key] = "materialized"
                    progress.console.print(f"  [green]✓[/green] {key}")
            progress.update(task, completed=len(finished), description=f"materializing ({len(finished)} done)")
            if not was_alive:
                break

    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    if not result.success:
        failures = [event.step_key for event in result.all_events if event.is_step_failure]
        console.print(f"[red]Run {result.run_id} failed at {failures}[/red]; see the Dagster UI (`dagster dev`).")
        raise typer.Exit(1)
    console.print(f"[bold green]Done[/bold green] in {time.time() - started:.0f}s (run {result.run_id}).")
    _print_outputs(console, settings)
    _print_evaluation(console, settings)


def _print_evaluation(console, settings, answers: int = 2) -> None:
    """What the fine-tune changed: base vs tuned held-out perplexity and two answers side by side."""
    import json

    from rich.table import Table

    path = settings.paths.tables / "adapter_evaluation.json"
    if not path.is_file():
        return
    evaluation = json.loads(path.read_text())
    base_model = settings.paths.tables / "base_model.json"
    name = json.loads(base_model.read_text()).get("name") if base_model.is_file() else "base"
    table = Table(title=f"{name}: base vs fine-tuned on {evaluation['validation_examples']} held-out examples")
    for column in ("", "base", "fine-tuned"):
        table.add_column(column, overflow="fold")
    table.add_row("held-out perplexity", f"{evaluation['base_perplexity']:.2f}", f"{evaluation['tuned_perplexity']:.2f} "
                  f"({evaluation['perplexity_change']:+.0%})")
    table.add_row("held-out loss", f"{evaluation['base_loss']:.4f}", f"{evaluation['tuned_loss']:.4f}")
    # Held-out prompts first: they have the author's own answer to compare with.
    rows = sorted(evaluation["generations"], key=lambda r: r.get("reference") is None)[:answers]
    for row in rows:
        prompt = row["messages"][-1]["content"] if row["messages"] else ""
        label = f"{row['prompt_id']}: {prompt[:160]}"
        if row.get("reference"):
            label += f"\n[dim]reference: {row['reference'][:160]}[/dim]"
        table.add_row(label, row["base"]["text"], row["tuned"]["text"])
    console.print(table)
    console.print(f"gate: {evaluation['reason']}", soft_wrap=True)


def _print_outputs(console, settings) -> None:
    from forge_pipeline.embed.store import index_root

    paths = settings.paths
    rows = [
        ("tables (Parquet)", paths.tables),
        ("quarantine (dropped records + reasons)", paths.quarantine),
        ("dataset catalog", paths.catalog / "catalog.json"),
        ("adapters", paths.adapters),
        ("GGUF exports", paths.exports),
        ("adapter manifest", paths.manifest),
        ("embedding index (forge search)", index_root(settings.data_root)),
        ("MLflow store", settings.tracking_uri),
    ]
    for label, where in rows:
        console.print(f"  {label:<42} {where}", soft_wrap=True)  # a path split over two lines cannot be copied


@app.command()
def status(data_root: Path = typer.Option(None)) -> None:
    """Where things are and what is current: dataset versions, promoted model, quarantine counts."""
    import json

    import polars as pl
    from rich.console import Console
    from rich.table import Table

    from forge_pipeline.settings import load_settings

    console = Console()
    settings = load_settings(**({"data_root": data_root} if data_root else {}))
    paths = settings.paths
    console.print(f"data root: {paths.root}")
    catalog_file = paths.catalog / "catalog.json"
    if catalog_file.exists():
        versions = json.loads(catalog_file.read_text()).get("versions", [])
        table = Table("dataset version", "created", "train", "validation")
        for version in versions[-10:]:
            table.add_row(version["version_id"], str(version.get("created_at")),
                          str(version.get("counts", {}).get("train")), str(version.get("counts", {}).get("validation")))
        console.print(table)
    else:
        console.print("no dataset versions yet (run `forge demo`)")
    if paths.manifest.exists():
        manifest = json.loads(paths.manifest.read_text())
        console.print(f"promoted model version: {manifest.get('current')} (of {len(manifest.get('versions', {}))})")
    dropped = sorted(paths.quarantine.glob("*.parquet")) if paths.quarantine.exists() else []
    for file in dropped:
        console.print(f"quarantine {file.stem}: {pl.read_parquet(file).height} records")


def _register_stage_commands() -> None:
    for stage in STAGES_WITH_COMMANDS:
        module_name = f"forge_pipeline.{stage}.commands"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(app)


_register_stage_commands()


def main() -> None:
    try:
        app()
    except Exception as err:  # a clear one-line error for people; tracebacks with FORGE_DEBUG=1
        if os.environ.get("FORGE_DEBUG"):
            raise
        print(f"forge: error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
