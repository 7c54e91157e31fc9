"""`forge curate`, `forge dataset show VERSION` and `forge dataset validate FILE.jsonl`."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer

from forge_pipeline.cli_root import ForgeGroup, settings_from


def _reviewer(settings, given: str | None) -> str | None:
    if given or settings.curate.reviewer:
        return given or settings.curate.reviewer
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _dataset_group(app: typer.Typer) -> typer.Typer:
    """Reuse a `dataset` group another stage (the catalog) registered, so both add commands to one group."""
    for group in app.registered_groups:
        if group.name == "dataset" and group.typer_instance is not None:
            return group.typer_instance
    dataset = typer.Typer(cls=ForgeGroup, help="Inspect and validate datasets.", no_args_is_help=True)
    app.add_typer(dataset, name="dataset")
    return dataset


def register(app: typer.Typer) -> None:
    @app.command()
    def curate(
        ctx: typer.Context,
        source: str | None = typer.Option(
            None, help="Only examples from this source (vault, conversation, interaction, import)."
        ),
        tag: str | None = typer.Option(None, help="Only examples with this tag."),
        status: str = typer.Option(
            "unreviewed",
            help="Only examples whose decision is this (unreviewed, approved, rejected, edited, skipped, all).",
        ),
        search: str | None = typer.Option(None, help="Only examples whose text contains this (case-insensitive)."),
        approve_all: bool = typer.Option(False, "--approve-all", help="Approve every selected example, no questions."),
        export: Path | None = typer.Option(None, "--export", help="Write all decisions to this JSONL file and exit."),
        import_: Path | None = typer.Option(None, "--import", help="Read decisions from this JSONL file and exit."),
        reviewer: str | None = typer.Option(
            None, help="Name stored with decisions (default: curate.reviewer or $USER)."
        ),
    ) -> None:
        """Review examples one at a time (a approve, r reject, e edit, s skip, u undo, v view all, q quit); decisions are
        kept in <data_root>/curation.sqlite and apply to every later dataset version."""
        from rich.console import Console

        from forge_pipeline.curate.decisions import DecisionStore
        from forge_pipeline.errors import ForgeError

        console = Console()
        settings = settings_from(ctx)
        who = _reviewer(settings, reviewer)
        try:
            with DecisionStore(settings.paths.curation_db) as store:
                _curate(
                    store,
                    settings,
                    console,
                    who,
                    source=source,
                    tag=tag,
                    status=status,
                    search=search,
                    approve_all=approve_all,
                    export=export,
                    import_=import_,
                )
        except ForgeError:
            raise
        except OSError as err:  # the --export/--import file or the decisions database: the person's to fix
            raise ForgeError(str(err)) from err

    dataset = _dataset_group(app)

    @dataset.command("show")
    def show(
        ctx: typer.Context,
        version: str = typer.Argument(..., help="Version id from the catalog, `latest`, or a version folder."),
        as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
        hardware: str | None = typer.Option(None, help="Estimate for cpu or gpu (default: curate.estimate_hardware)."),
    ) -> None:
        """Counts by source and tag, token lengths (with a histogram PNG), PII replaced, duplicates removed,
        a sample, and an estimate of training time and memory."""
        from forge_pipeline.curate.inspect import dataset_stats, resolve_version, write_histogram

        settings = settings_from(ctx)
        if hardware not in (None, "cpu", "gpu"):
            typer.echo("dataset show: --hardware must be cpu or gpu", err=True)
            raise typer.Exit(2)
        folder = resolve_version(settings, version)  # DatasetNotFound / CatalogError: one line (ForgeGroup)
        stats = dataset_stats(folder, settings, hardware=hardware)
        stats["histogram_png"] = str(write_histogram(folder, settings, stats["version_id"]))
        if as_json:
            typer.echo(json.dumps(stats, indent=2, ensure_ascii=False, default=str))
            return
        _print_stats(stats, settings)

    @dataset.command("validate")
    def validate(
        ctx: typer.Context,
        file: Path = typer.Argument(..., help='A chat JSONL file: one {"messages": [...]} per line.'),
        add: bool = typer.Option(False, "--add", help="When valid, copy it to <data_root>/imports/ for ingest."),
    ) -> None:
        """Check a chat JSONL the way hosted fine-tuning APIs do; every problem is listed with its line."""
        from forge_pipeline.curate.validate import add_import, validate_jsonl

        settings = settings_from(ctx)
        report = validate_jsonl(file, settings.train.max_length, settings.prepare.filter.languages)
        for line, problem in report.problems:
            typer.echo(f"{file}:{line}: {problem}" if line else f"{file}: {problem}")
        for line, note in report.warnings:
            typer.echo(f"{file}:{line}: warning: {note}")
        if not report.ok:
            typer.echo(f"{file}: INVALID: {len(report.problems)} problem(s) in {report.examples} example(s)")
            raise typer.Exit(1)
        tokens = report.tokens
        typer.echo(
            f"{file}: valid: {report.examples} examples, about {sum(tokens)} tokens "
            f"(longest {max(tokens)}, limit {settings.train.max_length})"
        )
        if add:
            target = add_import(file, settings.paths.imports)
            typer.echo(f'added as {target} (ingested as source "import" on the next `forge demo`)')


def _curate(
    store, settings, console, who: str | None, *, source, tag, status, search, approve_all, export, import_
) -> None:
    from forge_pipeline.curate.review import load_examples, run_review, select_examples

    if export or import_:
        if import_:
            n = store.import_jsonl(import_)
            console.print(f"imported {n} decisions from {import_}", markup=False)
        if export:
            n = store.export_jsonl(export)
            console.print(f"exported {n} decisions to {export}", markup=False)
        return
    examples = select_examples(
        load_examples(settings), store.all(), source=source, tag=tag, status=status, search=search
    )
    if approve_all:
        n = store.approve_all([e["example_id"] for e in examples], reviewer=who)
        console.print(
            f"approved {n} of {len(examples)} selected examples (existing approvals, rejections and edits kept)"
        )
        return
    if not examples:
        console.print(
            f"nothing to review with these filters (status={status}); decisions so far: {store.counts()}", markup=False
        )
        return
    actions = run_review(examples, store, reviewer=who, console=console)
    console.print(f"this session: {actions}; all decisions: {store.counts()}", markup=False)


def _print_stats(stats: dict, settings) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from forge_pipeline.durations import format_duration
    from forge_pipeline.records import escape_control as shown

    console = Console()
    console.print(shown(f"dataset {stats['version_id']}  {stats['path']}"), style="bold", markup=False)
    console.print(f"examples: train {stats['counts']['train']}, validation {stats['counts']['validation']}")

    def table(title: str, counts: dict, unit: str = "examples") -> None:
        t = Table(title=title)
        t.add_column("name")
        t.add_column(unit, justify="right")
        for name, n in counts.items():
            t.add_row(Text(shown(name)), str(n))
        console.print(t if counts else f"{title}: none")

    table("by source", stats["by_source"])
    table("by tag", stats["by_tag"])
    if stats["by_curation_status"]:
        table("by curation status", stats["by_curation_status"])
    tokens = stats["tokens"]
    console.print(
        f"tokens ({tokens['counting']}): total {tokens['total']}, mean {tokens['mean']}, "
        f"p50 {tokens['p50']}, p95 {tokens['p95']}, max {tokens['max']}, "
        f"over max_length {tokens['over_max_length']}"
    )
    for split, split_stats in tokens["by_split"].items():
        console.print(
            f"  {split}: mean {split_stats['mean']}, p50 {split_stats['p50']}, p95 {split_stats['p95']}, "
            f"max {split_stats['max']} (the catalog's token_stats)"
        )
    console.print(f"token-length histogram: {stats['histogram_png']}")
    table("PII replaced", stats["pii_replaced"], unit="replacements")  # a count of spans, not of examples
    console.print(shown(f"  (PII counts from {stats['pii_replaced_from']})"), markup=False)
    console.print(f"duplicates removed upstream: {stats['duplicates_removed']}")
    for stage, reasons in stats["dropped_by_stage"].items():
        console.print(shown(f"  dropped by {stage}: {reasons}"), markup=False)
    for example in stats["sample"]:
        last = (example["messages"] or [{}])[-1].get("content", "")
        console.print(
            shown(f"- [{example['source']}] {', '.join(example['tags'] or [])}: {last[:100]!r}"), markup=False
        )
    estimate = stats["estimate"]
    console.print(
        f"[bold]training estimate[/bold] ({estimate['hardware']}): {estimate['total_tokens']} tokens "
        f"({estimate['tokens_per_epoch']} per epoch × {estimate['epochs']})"
    )
    if "note" in estimate:
        console.print(estimate["note"])
        return
    memory = estimate["memory_gb"]
    console.print(
        f"  model {estimate['model']} ({estimate['params']:,} parameters) at ~{estimate['tokens_per_s']:,.0f} tok/s "
        f"({estimate['throughput_basis']})",
        markup=False,
    )
    console.print(
        f"  time ≈ {format_duration(estimate['seconds'])}; memory ≈ {memory['total']} GB "
        f"(weights {memory['weights']}, LoRA+optimizer {memory['lora_and_optimizer']}, activations "
        f"{memory['activations']}, logits {memory['logits']}; {memory['assumes']}). Estimates, not promises."
    )
