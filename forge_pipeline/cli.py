"""The `forge` command. Heavy libraries are imported inside commands so `forge --help` starts fast.

Each stage adds its own commands from `forge_pipeline/<stage>/commands.py` (a `register(app)` function),
so this file stays a list of entry points, not a home for stage logic. The options every command shares
(`forge --data-root DIR --config FILE COMMAND`) and the one-line printing of a ForgeError live in cli_root.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import threading
import time
import uuid
from pathlib import Path

import typer

from forge_pipeline.cli_root import ForgeGroup, root_of, root_options, settings_from
from forge_pipeline.selection import SelectionError, asset_of_step, rerun_selection, resolve_selection

app = typer.Typer(cls=ForgeGroup, no_args_is_help=True)
app.callback()(root_options)  # --data-root and --config, before the command: `forge --data-root DIR demo`

STAGES_WITH_COMMANDS = ("ingest", "prepare", "catalog", "curate", "train", "export", "serve", "embed", "feedback")


def _dagster_home(settings) -> Path:
    """DAGSTER_HOME, defaulting to <data_root>/dagster_home, with Forge's dagster.yaml copied in."""
    from forge_pipeline.settings import DAGSTER_YAML

    home = Path(os.environ.get("DAGSTER_HOME") or settings.paths.root / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@app.command()
def demo(
    ctx: typer.Context,
    select: str = typer.Option(
        "*",
        help="Assets to materialize: keys separated by spaces or commas ('base_model lora_adapter'), each with "
        "Dagster's +/* graph operators ('*lora_adapter adapter_evaluation', 'vault_notes+'), or Dagster's "
        "selection syntax ('key:base_model or key:lora_adapter', '+key:lora_adapter').",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show library warnings, logs and progress bars on the terminal too."
    ),
) -> None:
    """Materialize the whole asset chain on the configured data (the sample data by default)."""
    from rich.console import Console

    from forge_pipeline.run_log import library_output_to, run_log_path

    settings = settings_from(ctx)
    settings.paths.ensure()
    run_id = str(uuid.uuid4())
    log_path = run_log_path(settings.paths.root, f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:8]}")
    # Library warnings, llama.cpp's per-tensor quantizer lines and third-party progress bars go to the log file;
    # the terminal keeps Forge's own progress, results and, on failure, one line per failed step.
    with library_output_to(log_path, verbose) as terminal:
        console = Console(file=terminal)
        try:
            _demo(console, settings, select, run_id, root_of(ctx).config)
        finally:
            if not verbose:
                console.print(f"library output (warnings, converter and quantizer logs): {log_path}", soft_wrap=True)


def _demo(console, settings, select: str, run_id: str, config_file: Path | None) -> None:
    import dagster as dg
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    home = _dagster_home(settings)

    from forge_pipeline.definitions import build_definitions

    # the run's assets read the same settings file as this command (--config), not only FORGE_CONFIG
    definitions = build_definitions(str(settings.data_root), str(config_file) if config_file else None)
    job = definitions.resolve_implicit_global_asset_job_def()
    asset_graph = definitions.resolve_asset_graph()
    try:
        chosen = resolve_selection(select, asset_graph)
    except SelectionError as err:  # click prints it as a usage error (exit status 2), outside the log redirect
        raise typer.BadParameter(f"{select!r}: {err}", param_hint="'--select'") from None
    # Upstream before downstream, so the progress list below reads in the order the chain runs.
    selected = [
        key.to_user_string()
        for key in asset_graph.toposorted_asset_keys
        if key in chosen and asset_graph.get(key).is_materializable
    ]
    instance = dg.DagsterInstance.get()
    console.print(
        f"[bold]Forge demo[/bold]: {len(selected)} assets, data root {settings.paths.root}, DAGSTER_HOME {home}",
        soft_wrap=True,
    )

    finished: set[str] = set()
    # what the worker thread hands back: the run's result, or the exception that stopped it
    results: list[dg.ExecuteInProcessResult] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            result = job.execute_in_process(
                instance=instance,
                asset_selection=[dg.AssetKey.from_user_string(k) for k in selected],
                raise_on_error=False,
                run_id=run_id,
                # Every log line, a failing step's trace included, goes to the run's event log (the Dagster UI
                # shows it); the terminal gets the progress display and, on failure, one line per failed step.
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            )
        except Exception as err:  # surfaced below, after the progress display closes
            errors.append(err)
        else:
            results.append(result)

    # The run (worker thread) imports MLflow's SQLAlchemy store late, while this thread reads Dagster's SQLite
    # storage: two threads importing sqlalchemy.orm at once crashed the demo ("partially initialized module
    # 'sqlalchemy.orm.exc'"). Importing both here, before the worker starts, leaves nothing to race on.
    import mlflow  # noqa: F401
    import sqlalchemy.orm  # noqa: F401

    worker = threading.Thread(target=run, daemon=True)
    training = TrainingProgress(instance, run_id)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("materializing", total=len(selected))
        started = time.time()
        worker.start()
        while True:
            was_alive = worker.is_alive()  # read before polling: the last poll always follows the run's end
            worker.join(timeout=1.0)
            for key in selected:
                if key not in finished:
                    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
                    if event is not None and event.run_id == run_id:
                        finished.add(key)
                        progress.console.print(f"  [green]✓[/green] {key}")
            description = f"materializing ({len(finished)} done)"
            for line, worth_printing in training.poll():
                description = f"{description} · {line}"
                if worth_printing:  # a line per fifth of training: readable in a log file, not only a terminal
                    progress.console.print(f"    {line}", markup=False)
            progress.update(task, completed=len(finished), description=description)
            if not was_alive:
                break

    if errors:
        raise errors[0]
    result = results[0]
    if not result.success:
        for line in _failure_lines(result, asset_graph, select, home):
            console.print(line, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"[bold green]Done[/bold green] in {time.time() - started:.0f}s (run {result.run_id}).")
    _print_outputs(console, settings)
    _print_evaluation(console, settings)


class TrainingProgress:
    """The training subprocesses' progress lines ("step 4/64 (6%) loss 2.31 68 tok/s ETA 2m55s", sent through
    Dagster Pipes into the run's event log), read back while the run goes on."""

    LINE = re.compile(r"^step \d+/(\d+) \((\d+)%\)")

    def __init__(self, instance, run_id: str):
        self.instance, self.run_id = instance, run_id
        self.cursor: str | None = None
        self.latest: str | None = None
        self.printed_fifths: dict[str, int] = {}

    def poll(self) -> list[tuple[str, bool]]:
        """The newest progress line (if any) and whether it starts a new fifth of its step's training."""
        # Dagster 1.13 (pinned) has no public reader of a run's log events by cursor; get_records_for_run is
        # the instance's own reader (no public marker). Revisit when a public one appears.
        connection = self.instance.get_records_for_run(self.run_id, cursor=self.cursor)
        self.cursor = connection.cursor
        fresh = None
        for record in connection.records:
            entry = record.event_log_entry
            match = self.LINE.match(entry.user_message or "") if entry.dagster_event is None else None
            if match:
                step = entry.step_key or "training"
                fresh = (f"{step}: {entry.user_message}", int(match.group(2)) // 20, step)
        if fresh is None:
            return [(self.latest, False)] if self.latest else []
        self.latest, fifth, step = fresh
        worth_printing = fifth > self.printed_fifths.get(step, -1)
        if worth_printing:
            self.printed_fifths[step] = fifth
        return [(self.latest, worth_printing)]


def _with_marks(output: dict) -> str:
    from rich.markup import escape

    from forge_pipeline.export.answer_quality import marks

    flags = marks(output["quality"]) if output.get("quality") else ""
    return _glimpse(output["text"], 60) + (f"\n[bold red]⚠ {escape(flags)}[/bold red]" if flags else "")


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
    table.add_row(
        "held-out perplexity",
        f"{evaluation['base_perplexity']:.2f}",
        f"{evaluation['tuned_perplexity']:.2f} ({evaluation['perplexity_change']:+.0%})",
    )
    # What a person notices in the answers (export/answer_quality.py) and what they know of the notes.
    base_q, tuned_q = evaluation.get("base_quality") or {}, evaluation.get("tuned_quality") or {}
    for label, figure in (
        ("repeat a sentence", "repeated_sentence_rate"),
        ("cut at token limit", "cut_rate"),
        ("show template text", "placeholder_rate"),
    ):
        if figure in base_q and figure in tuned_q:
            table.add_row(label, f"{base_q[figure]:.0%}", f"{tuned_q[figure]:.0%}")
    knowledge = evaluation.get("knowledge") or {}
    if knowledge.get("questions"):
        table.add_row(
            f"knows the notes ({knowledge['questions']} q.)",
            f"{knowledge['base_score']:.0%} key terms",
            f"{knowledge['tuned_score']:.0%} key terms",
        )
    # Held-out prompts first: they have the author's own answer to compare with.
    rows = sorted(evaluation["generations"], key=lambda r: r.get("reference") is None)[:answers]
    for row in rows:
        prompt = row["messages"][-1]["content"] if row["messages"] else ""
        label = f"{row['prompt_id']}: {_glimpse(prompt, 50)}"
        if row.get("reference"):
            label += f"\n[dim]reference: {_glimpse(row['reference'], 50)}[/dim]"
        table.add_row(label, *(_with_marks(row[side]) for side in ("base", "tuned")))
    console.print(table)
    console.print(f"gate: {evaluation['reason']}", soft_wrap=True)


def _glimpse(text: str, limit: int) -> str:
    """A table cell's worth of a text: one line, at most `limit` characters (the full answers are in the
    evaluation's JSON and the Dagster UI)."""
    from rich.markup import escape

    flat = " ".join(text.split())
    return escape(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def _failure_lines(result, asset_graph, select: str, home: Path) -> list[str]:
    """What a person needs after a failed run: per failed check its own report (the PII check lists the values,
    masked, and the settings that change them), per failed step one line, each with a rerun command that
    `forge demo --select` accepts."""
    import dagster as dg

    from forge_pipeline.records import escape_control

    out = []
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                asset = evaluation.asset_key.to_user_string()
                rerun = rerun_selection(asset_graph, evaluation.asset_key, select)
                # the check's own rerun hint does not know this run's --select: the one below does
                report = "\n".join(
                    line for line in (evaluation.description or "").splitlines() if not line.startswith("Then rerun:")
                )
                out.append(
                    escape_control(
                        f"forge demo: check {asset}:{evaluation.check_name} failed: {report}\n"
                        f"Then rerun: forge demo --select '{rerun}'"
                    )
                )
    for event in result.all_events:
        if event.is_step_failure:
            key = asset_of_step(asset_graph, event.step_key)
            rerun = rerun_selection(asset_graph, key, select) if key is not None else f"{event.step_key}*"
            out.append(_failure_line(event, result.run_id, home, rerun))
    return out


def _failure_line(event, run_id: str, home: Path, rerun: str | None = None) -> str:
    """One line for a failed step: which step, the error's own first line (stage errors name their file and
    what to do) and where the full trace is."""
    error = event.step_failure_data.error if event.step_failure_data else None
    while (
        error is not None
        and error.cause is not None
        and error.cls_name in ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError")
    ):
        error = error.cause  # Dagster's wrapper says only "Error occurred while executing op ..."
    message = (error.message.strip().splitlines() or [""])[0] if error else "failed"
    from forge_pipeline.records import escape_control

    return escape_control(
        f"forge demo: step {event.step_key} failed: {message} (full trace: run {run_id} in "
        f"the Dagster UI, DAGSTER_HOME={home}; fix it and rerun with --select '{rerun or event.step_key + '*'}')"
    )


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
def status(ctx: typer.Context) -> None:
    """Where things are and what is current: dataset versions, promoted model, quarantine counts, the embedding
    index, the last run of each job and the asset checks that fail."""
    import polars as pl
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from forge_pipeline.catalog.versions import list_versions
    from forge_pipeline.export.manifest import read_manifest
    from forge_pipeline.records import escape_control as shown

    console = Console()
    settings = settings_from(ctx)
    paths = settings.paths
    console.print(shown(f"data root: {paths.root}"), markup=False, soft_wrap=True)
    versions = list_versions(settings)  # a damaged catalog.json: CatalogError names it, the line and what to do
    if versions:
        table = Table("dataset version", "created", "train", "validation")
        for version in versions[-10:]:
            counts = version.get("counts", {})
            table.add_row(
                *(
                    Text(shown(cell))
                    for cell in (
                        version["version_id"],
                        version.get("created_at"),
                        counts.get("train"),
                        counts.get("validation"),
                    )
                )
            )
        console.print(table)
    else:
        console.print("no dataset versions yet (run `forge demo`)")
    if paths.manifest.exists():
        manifest = read_manifest(paths.manifest)
        console.print(
            shown(f"promoted model version: {manifest.get('current')} (of {len(manifest['versions'])})"), markup=False
        )
    dropped = sorted(paths.quarantine.glob("*.parquet")) if paths.quarantine.exists() else []
    for file in dropped:
        console.print(shown(f"quarantine {file.stem}: {pl.read_parquet(file).height} records"), markup=False)
    _print_embedding_index(console, settings)
    _print_runs_and_checks(console, settings)


def _print_embedding_index(console, settings) -> None:
    from forge_pipeline.embed.store import IndexNotFoundError, index_root, read_versions
    from forge_pipeline.records import escape_control as shown

    root = index_root(settings.data_root)
    try:
        versions = read_versions(root)
    except IndexNotFoundError as err:
        console.print(shown(f"embedding index: {err}"), markup=False, soft_wrap=True)
        return
    current = next((v for v in versions["versions"] if v.get("version_id") == versions["current"]), None)
    if current is None:
        console.print(
            shown(f"embedding index: none yet in {root} (materialize embedding_index)"), markup=False, soft_wrap=True
        )
        return
    console.print(
        shown(
            f"embedding index: {current['version_id']} ({current.get('model')}, {current.get('chunks')} "
            f"chunks, dimension {current.get('dimension')}; {len(versions['versions'])} version(s)) "
            f"in {root}"
        ),
        markup=False,
        soft_wrap=True,
    )


RECENT_RUNS = 50  # runs read from the Dagster instance for `forge status`


def run_summary(instance) -> tuple[list[dict], list[dict]]:
    """(the last run of each job, newest first; the asset checks whose latest evaluation failed), read from
    a Dagster instance's run storage and event log."""
    import dagster as dg

    runs = [record.dagster_run for record in instance.get_run_records(limit=RECENT_RUNS)]  # newest first
    last_by_job: dict[str, dict] = {}
    latest_checks: dict[tuple[str, str], dict] = {}
    for run in runs:
        last_by_job.setdefault(run.job_name, {"job": run.job_name, "run_id": run.run_id, "status": run.status.value})
        # Dagster 1.13 (pinned) has no public method that reads a run's asset check evaluations back; all_logs
        # is the instance's own reader (no public marker). Revisit when one appears.
        for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            evaluation = record.dagster_event.event_specific_data
            key = (evaluation.asset_key.to_user_string(), evaluation.check_name)
            # all_logs is oldest first within a run; runs come newest first, so the first run to name a
            # check holds its latest evaluation.
            if key not in latest_checks or latest_checks[key]["run_id"] == run.run_id:
                latest_checks[key] = {
                    "asset": key[0],
                    "check": key[1],
                    "passed": evaluation.passed,
                    "run_id": run.run_id,
                    # what the check says about itself (the PII check: values masked, what changes them)
                    **({"description": evaluation.description} if evaluation.description else {}),
                }
    failed = [c for c in latest_checks.values() if not c["passed"]]
    return list(last_by_job.values()), sorted(failed, key=lambda c: (c["asset"], c["check"]))


def _print_runs_and_checks(console, settings) -> None:
    import dagster as dg
    from rich.table import Table
    from rich.text import Text

    from forge_pipeline.records import escape_control as shown

    home = _dagster_home(settings)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        jobs, failed = run_summary(instance)
    if not jobs:
        console.print(shown(f"no pipeline runs yet in DAGSTER_HOME={home}"), markup=False, soft_wrap=True)
        return
    table = Table("job", "last run", "status")
    for job in jobs:
        table.add_row(*(Text(shown(cell)) for cell in (job["job"], job["run_id"], job["status"])))
    console.print(table)
    if failed:
        for check in failed:
            console.print(
                shown(f"FAILED check {check['asset']}:{check['check']} (run {check['run_id']})"),
                markup=False,
                soft_wrap=True,
            )
            for line in (check.get("description") or "").splitlines():
                console.print(shown(f"  {line}"), markup=False, soft_wrap=True)
    else:
        console.print("asset checks: none failing")


def _register_stage_commands() -> None:
    for stage in STAGES_WITH_COMMANDS:
        module_name = f"forge_pipeline.{stage}.commands"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(app)


_register_stage_commands()


def main() -> None:
    # A ForgeError becomes one line (ForgeGroup); anything else is a bug in Forge and shows its trace.
    app()


if __name__ == "__main__":
    main()
