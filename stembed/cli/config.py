"""`stembed config list|show|validate`: the shipped config groups."""

from __future__ import annotations

from typing import Annotated

import typer

from stembed.cli.app import app, user_errors
from stembed.recipe.configs import config_file, groups, validate  # light: no hydra, no torch

config_app = typer.Typer(help="List, show and validate the shipped config groups.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("list")
def config_list() -> None:
    """Config groups and their options (GROUP=OPTION on the command line)."""
    found = groups()
    width = max(map(len, found)) + 1
    for group, options in found.items():
        typer.echo(f"{group:<{width}} {', '.join(options)}")


@config_app.command("show")
def config_show(name: str = typer.Argument(..., help="GROUP/OPTION, e.g. loss/mnrl, or train")) -> None:
    """Print one config file."""
    with user_errors():
        typer.echo(config_file(name).read_text(encoding="utf-8"), nl=False)


@config_app.command("validate")
def config_validate(
    presets: Annotated[list[str] | None, typer.Argument(help="Presets to check (default: all).")] = None,
) -> None:
    """Compose every preset; check targets import, their arguments and the trainer keys. Loads no model."""
    with user_errors():
        results = validate(presets)
    for check in results:
        typer.echo(f"{'ok' if not check.problems else 'FAIL':<5} {check.preset}")
        for problem in check.problems:
            typer.echo(f"      {problem}")
    failed = [c.preset for c in results if c.problems]
    typer.echo(f"{len(results) - len(failed)} of {len(results)} presets valid")
    if failed:
        raise typer.Exit(1)
