"""`stembed train` and `stembed resume`: forwarded to Hydra untouched."""

from __future__ import annotations

import os

import typer

from stembed.cli.app import app

FORWARD_ALL = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(context_settings=FORWARD_ALL)
def train(ctx: typer.Context) -> None:
    """Train one run (or a sweep with -m). Every argument goes to Hydra untouched.

    Examples: `stembed train +experiment=demo`, `stembed train --cfg job +experiment=demo`,
    `stembed train --help` (Hydra's help: config groups and options). `--debug` shows tracebacks;
    `--verbose` shows every log line on the console too (they always go to the run's train.log).
    """
    # Local: Hydra is imported only when a command runs, to keep `stembed --help` fast.
    from stembed.recipe.app import run_hydra

    args = list(ctx.args)
    if "--debug" in args:  # show tracebacks for input errors too
        args.remove("--debug")
        os.environ["STEMBED_DEBUG"] = os.environ["HYDRA_FULL_ERROR"] = "1"
    if "--verbose" in args:
        args.remove("--verbose")
        os.environ["STEMBED_VERBOSE"] = "1"
    run_hydra(args)


@app.command(context_settings=FORWARD_ALL)
def resume(ctx: typer.Context) -> None:
    """Resume a stopped run: `stembed resume RUN_ID [KEY=VALUE ...]`.

    Re-runs the run's own command in its run directory, continues from its newest checkpoint and logs
    into the same MLflow run. Same as `stembed train +resume=RUN_ID`.
    """
    args = list(ctx.args)
    if not args or "=" in args[0] or args[0].startswith("-"):
        typer.echo("usage: stembed resume RUN_ID [KEY=VALUE ...]  (`stembed runs` lists run ids)", err=True)
        raise typer.Exit(2)
    train_args = [f"+resume={args[0]}", *args[1:]]
    ctx.args = train_args
    train(ctx)
