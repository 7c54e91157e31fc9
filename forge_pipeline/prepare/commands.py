"""`forge pii review`: accept (keep as a word) or reject (always replace) the values the PII scrub finds."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from forge_pipeline.cli_root import ForgeGroup, settings_from

pii_app = typer.Typer(cls=ForgeGroup, help="Review what the PII scrub replaces.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(pii_app, name="pii")


@pii_app.command("review")
def review(
    ctx: typer.Context,
    accept: list[str] = typer.Option([], "--accept", help="Keep VALUE as a word (a listing's [id] works too)."),
    reject: list[str] = typer.Option([], "--reject", help="Always replace VALUE, in any letter case."),
    forget: list[str] = typer.Option([], "--forget", help="Drop the decision about VALUE."),
    from_file: Path | None = typer.Option(
        None, "--from-file", help="Decisions in bulk: lines `accept VALUE` / `reject VALUE` (# comments)."
    ),
    list_only: bool = typer.Option(False, "--list", help="List what the scrub replaces and flags, and exit."),
    unmask: bool = typer.Option(False, "--unmask", help="Show values in full (your own screen only)."),
    as_file: bool = typer.Option(
        False, "--as-file", help="Print the values as a --from-file template (values in full) and exit."
    ),
    interactive: bool = typer.Option(
        False, "--interactive", "-i", help="One value at a time, even when stdin is not a terminal."
    ),
    reviewer: str | None = typer.Option(None, help="Name stored with the decisions (default: $USER)."),
) -> None:
    """List the values the scrub would replace in training_examples and those the no_residual_pii check would
    flag (masked, with count and context), and record decisions. Decisions go to <data_root>/pii/review.json
    and join prepare.scrub.allow_list / deny_list the next time the scrub runs (`forge demo`). Without
    options, on a terminal: one value at a time (a accept, r reject, s skip, v view in full, q quit)."""
    import getpass

    from forge_pipeline.prepare.pii_decisions import read_decisions_file, review_path, update_decisions

    settings = settings_from(ctx)
    path = review_path(settings.paths.root)
    try:
        who = reviewer or getpass.getuser()
    except (KeyError, OSError):
        who = None
    # A ReviewError (an unusable review or decisions file, no training_examples yet) is a ForgeError: one line.
    accepted, rejected = list(accept), list(reject)
    if from_file is not None:
        more_accepted, more_rejected = read_decisions_file(from_file)
        accepted += more_accepted
        rejected += more_rejected
    needs_listing = list_only or as_file or any(_looks_like_id(a) for a in accepted + rejected)
    deciding = accepted or rejected or forget
    interactive = not deciding and not needs_listing and (interactive or sys.stdin.isatty())
    if not deciding and not needs_listing and not interactive:
        list_only = True  # a pipe or a script without decisions gets the listing
    candidates = _candidates(settings) if (list_only or as_file or interactive or needs_listing) else None
    if as_file:
        _print_template(candidates)
        return
    if deciding:
        from forge_pipeline.prepare.pii_review import resolve

        decisions, changed = update_decisions(
            path, resolve(accepted, candidates), resolve(rejected, candidates), forget, who
        )
        typer.echo(
            f"{changed} decision(s) changed; {len(decisions.accepted)} accepted, {len(decisions.rejected)} "
            f"rejected in {path}. They apply the next time the scrub runs: forge demo --select "
            "'*dataset_version' (or your usual --select)"
        )
        return
    if interactive:
        _interactive(candidates, path, who)
        return
    _print_listing(candidates, path, unmask)


def _looks_like_id(value: str) -> bool:
    value = value.strip("[]")
    return len(value) == 6 and all(c in "0123456789abcdef" for c in value)


def _candidates(settings):
    import polars as pl

    from forge_pipeline.prepare.pii_decisions import ReviewError
    from forge_pipeline.prepare.pii_review import review_candidates

    table = settings.paths.tables / "training_examples.parquet"
    if not table.exists():
        raise ReviewError(
            f"{table} does not exist yet: build it with `forge demo --select '*training_examples'` (or preview "
            "a vault without building anything: `forge check-inputs`)"
        )
    typer.echo("scrubbing training_examples in memory to see what the current settings replace ...", err=True)
    notes = settings.paths.tables / "vault_notes.parquet"  # what the vault marks as people, as the scrub reads it
    return review_candidates(
        pl.read_parquet(table),
        settings,
        cache_dir=settings.paths.cache,
        notes=pl.read_parquet(notes) if notes.exists() else None,
    )


def _print_listing(candidates, path: Path, unmask: bool) -> None:
    from forge_pipeline.prepare.pii_decisions import load_decisions
    from forge_pipeline.prepare.pii_review import listing
    from forge_pipeline.records import escape_control

    decisions = load_decisions(path)
    typer.echo(f"decisions so far: {len(decisions.accepted)} accepted, {len(decisions.rejected)} rejected ({path})")
    flagged = [item for item in candidates.ordered() if item[0] == "flagged"]
    replaced = [item for item in candidates.ordered() if item[0] == "replaced"]
    typer.echo(f"{len(flagged)} value(s) the no_residual_pii check flags (they block the chain):")
    for line in listing(flagged, unmask=unmask):
        typer.echo(escape_control(f"  {line}"))
    typer.echo(
        f"{len(replaced)} value(s) the scrub replaces in {candidates.examples_changed} of {candidates.examples} "
        "example(s):"
    )
    for line in listing(replaced, unmask=unmask):
        typer.echo(escape_control(f"  {line}"))
    typer.echo(
        "accept (keep as a word): forge pii review --accept VALUE-or-[id]; reject (always replace): --reject "
        "VALUE-or-[id]; in bulk: forge pii review --as-file > decisions.txt, edit, forge pii review --from-file "
        "decisions.txt"
    )


def _print_template(candidates) -> None:
    from forge_pipeline.prepare.pii_display import context_of
    from forge_pipeline.records import escape_control

    typer.echo("# PII review: for each value, uncomment (remove the leading #) the decision you want: `accept`")
    typer.echo("# keeps it as a word, `reject` always replaces it. Lines left commented decide nothing.")
    typer.echo("# Then: forge pii review --from-file THIS_FILE")
    for kind, flag in candidates.ordered():
        typer.echo(escape_control(f"# {kind} x{flag.count} ({flag.entity_type}): {context_of(flag)}"))
        typer.echo(escape_control(f"#accept {flag.value}"))
        typer.echo(escape_control(f"#reject {flag.value}"))


def _interactive(candidates, path: Path, who: str | None) -> None:
    from forge_pipeline.prepare.pii_decisions import update_decisions
    from forge_pipeline.prepare.pii_display import describe
    from forge_pipeline.records import escape_control

    items = candidates.ordered()
    values = [f.value for _, f in items]
    done = 0
    for i, (kind, flag) in enumerate(items, 1):
        typer.echo(escape_control(f"[{i}/{len(items)}] {kind}: {describe(flag, values)}"))
        while True:
            answer = typer.prompt("a accept (a word) / r reject (always replace) / s skip / v view / q quit", "s")
            if answer == "v":
                typer.echo(escape_control(f"  value: {flag.value}"))
                continue
            break
        if answer == "q":
            break
        if answer in ("a", "r"):
            update_decisions(
                path, [flag.value] if answer == "a" else [], [flag.value] if answer == "r" else [], [], who
            )
            done += 1
    typer.echo(f"{done} decision(s) saved in {path}; they apply the next time the scrub runs (forge demo)")
