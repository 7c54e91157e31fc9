"""What every `forge` command shares: the root options and how a ForgeError reaches the terminal.

`forge [--data-root DIR] [--config FILE] COMMAND ...`: the options come before the command, once for all
commands, and a command reads them through `settings_from(ctx)`. The settings file goes through
`load_settings(config_file=...)`, the same mechanism as FORGE_CONFIG and ./forge.yaml (settings.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from forge_pipeline.errors import ForgeError

if TYPE_CHECKING:
    # typer 0.29 carries its own copy of click and exports no public name for the click Context a group is
    # invoked with (typer.Context is a subclass of it); only the checker reads this private module.
    from typer._click import Context as ClickContext


@dataclass(frozen=True)
class RootOptions:
    data_root: Path | None = None
    config: Path | None = None


def root_options(
    ctx: typer.Context,
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Where outputs go (default: FORGE_DATA_ROOT, the settings file, or ./.forge_data)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="Settings file (YAML/TOML) read instead of FORGE_CONFIG / ./forge.yaml."
    ),
) -> None:
    """Forge: fine-tune a local LLM on your own vault and conversations."""
    ctx.obj = RootOptions(data_root, config)


def root_of(ctx: typer.Context) -> RootOptions:
    """The root options from any command's context (a nested group's too)."""
    return ctx.find_object(RootOptions) or RootOptions()


def settings_from(ctx: typer.Context, **overrides):
    """The settings a command runs with: the root options, then FORGE_* variables, the settings file and the
    defaults (load_settings' precedence); `overrides` win over everything."""
    from forge_pipeline.settings import load_settings

    options = root_of(ctx)
    if options.data_root is not None:
        overrides.setdefault("data_root", options.data_root)
    return load_settings(config_file=options.config, **overrides)


class ForgeGroup(TyperGroup):
    """A command group that prints a ForgeError as one line on stderr and exits 1; click keeps its own usage
    errors (exit 2), and any other exception propagates with its trace (it is a bug).

    Nested groups (`forge dataset`, `forge pii`) use it too, so the line names the whole command; were one to
    forget, the root group still catches the error and names the first word."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except typer.TyperException as err:  # click's usage errors, printed by click (exit status 2)
            _say_where_root_options_go(err)
            raise
        except ForgeError as err:
            if os.environ.get("FORGE_DEBUG"):  # the trace, for whoever debugs Forge itself
                raise
            from forge_pipeline.records import escape_control  # a file name's ESC is shown, not obeyed

            typer.echo(escape_control(f"{_command_name(ctx)}: {err}"), err=True)
            raise typer.Exit(1) from None


ROOT_OPTIONS = ("--data-root", "--config")


def _say_where_root_options_go(err: typer.TyperException) -> None:
    """`forge demo --data-root DIR` (where it went before it was shared) is an unknown option of `demo`: say
    where it goes now."""
    option, ctx = getattr(err, "option_name", None), getattr(err, "ctx", None)
    if option in ROOT_OPTIONS and ctx is not None:
        command = " ".join(_words_below_root(ctx))
        err.message = f"{option} goes before the command: forge {option} VALUE {command} ..."
        if hasattr(err, "possibilities"):  # click's unknown-option error
            err.possibilities = None  # click's "Possible options" list would not hold it


def _command_name(ctx: ClickContext) -> str:
    """'forge dataset show', from the context of the group that caught the error and the subcommand it ran."""
    return " ".join(["forge", *_words_below_root(ctx), *([ctx.invoked_subcommand] if ctx.invoked_subcommand else [])])


def _words_below_root(ctx: ClickContext) -> list[str]:
    words: list[str] = []
    while ctx.parent is not None:
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return words
