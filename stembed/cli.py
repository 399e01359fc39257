"""The `stembed` command. Keep imports light: `stembed --help` must not import torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import typer

app = typer.Typer(
    help="Fine-tune sentence-embedding models: Hydra configs in, MLflow runs and model cards out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

FORWARD_ALL = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(context_settings=FORWARD_ALL)
def train(ctx: typer.Context) -> None:
    """Train one run (or a sweep with -m). Every argument goes to Hydra untouched.

    Examples: `stembed train +experiment=demo`, `stembed train --cfg job +experiment=demo`,
    `stembed train --help` (Hydra's help: config groups and options).
    """
    from stembed.train import run_hydra

    run_hydra(list(ctx.args))


@app.command()
def ui(
    port: int = typer.Option(5000, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 127.0.0.1 keeps it on this machine."),
    backend_store_uri: str = typer.Option(
        None, help="Tracking store; default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db here."
    ),
) -> None:
    """Open the MLflow UI on the project's store."""
    from stembed.tracking import default_tracking_uri

    uri = backend_store_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(Path("outputs"))
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow_bin is None:
        typer.echo("The `mlflow` command is not installed in this environment: run `make install`.", err=True)
        raise typer.Exit(2)
    typer.echo(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C to stop)")
    command = [mlflow_bin, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    raise typer.Exit(subprocess.call(command))


@app.command()
def version() -> None:
    """Print stembed's version."""
    from stembed import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
