"""Reading runs back: `ui`, `runs`, `compare`, `card`, `diff`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from stembed.cli.app import TRACKING_URI, app, user_errors
from stembed.errors import StembedError
from stembed.tracking import runs as runs_module  # light: mlflow is imported when a command runs
from stembed.tracking.store import check_sqlite_store, resolve_tracking_uri


@app.command()
def ui(
    port: int = typer.Option(5000, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 127.0.0.1 keeps it on this machine."),
    backend_store_uri: str = typer.Option(
        None, help="Tracking store; default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db here."
    ),
) -> None:
    """Open the MLflow UI on the project's store."""
    uri = resolve_tracking_uri(backend_store_uri, Path("outputs"))
    with user_errors():
        check_port(port)
        check_sqlite_store(uri, read_only=False)  # MLflow would add its tables to any database it opens
    if reason := port_taken(host, port):
        typer.echo(
            f"stembed: error: --port {port}: cannot serve on {host}:{port} ({reason}); another program "
            f"listens there. Stop it or pick a free port, e.g. --port {port + 1}.",
            err=True,
        )
        raise typer.Exit(2)
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow_bin is None:
        typer.echo("The `mlflow` command is not installed in this environment: run `make install`.", err=True)
        raise typer.Exit(2)
    typer.echo(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C to stop)")
    command = [mlflow_bin, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    raise typer.Exit(subprocess.call(command))


def check_port(port: int) -> None:
    """A port number outside 1..65535 is bad input, not an OverflowError from the socket."""
    if not 1 <= port <= MAX_PORT:
        raise StembedError(f"--port {port}: a TCP port is a number from 1 to {MAX_PORT}; e.g. --port 5000.")


MAX_PORT = 65535


def port_taken(host: str, port: int) -> str | None:
    """Why host:port cannot be bound (mlflow ui would start anyway and exit 0), or None when it is free."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            return err.strerror or str(err)
    return None


@app.command()
def runs(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this MLflow experiment."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs, newest first."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Recent runs: name, status, duration, key metric, start time."""
    with user_errors():
        mlflow_client = runs_module.client(tracking_uri)
        names = {e.experiment_id: e.name for e in mlflow_client.search_experiments()}
        found = runs_module.search(mlflow_client, experiment, limit)
        typer.echo(runs_module.render(runs_module.runs_rows(found, names), fmt))


@app.command()
def compare(
    run_ids: Annotated[list[str] | None, typer.Argument(help="Runs to compare.")] = None,
    experiment: str = typer.Option(None, "--experiment", "-e", help="Every run of this experiment."),
    sweep: str = typer.Option(None, "--sweep", help="The child runs of this sweep's parent run."),
    significance: bool = typer.Option(
        False, "--significance", help="RUN_A RUN_B: paired bootstrap of every shared metric (B - A)."
    ),
    by_config: bool = typer.Option(
        False, "--by-config", help="Group runs that differ only in seeds; mean ± sd per configuration."
    ),
    resamples: int = typer.Option(10_000, "--resamples", help="Bootstrap resamples (--significance)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling (--significance)."),
    limit: int = typer.Option(100, "--limit", "-n", min=1),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    tracking_uri: str = TRACKING_URI,
) -> None:
    """One table: the config keys that differ between runs, then their metrics, best first."""
    # Local: the analysis imports sentence-transformers (torch), which `stembed --help` must not load.
    from stembed.analysis import compare as analysis

    with user_errors():
        if bool(run_ids) + bool(experiment) + bool(sweep) != 1:
            raise StembedError(
                "compare: give run ids, or --experiment NAME, or --sweep PARENT_RUN_ID (one of them)."
            )
        if significance and (len(run_ids or []) != 2 or by_config):
            raise StembedError(
                f"compare --significance: give exactly two run ids (RUN_A RUN_B), got {len(run_ids or [])}"
                f"{' run ids' if run_ids else ' (with --experiment/--sweep)'}. The test pairs their examples."
            )
        mlflow_client = runs_module.client(tracking_uri)
        if run_ids:
            found = [runs_module.get_run(mlflow_client, run_id) for run_id in run_ids]
        elif sweep:
            runs_module.get_run(mlflow_client, sweep)
            found = runs_module.search(mlflow_client, None, limit, f"tags.mlflow.parentRunId = '{sweep}'")
        else:
            found = runs_module.search(mlflow_client, experiment, limit)
        if significance:
            typer.echo(analysis.significance_report(mlflow_client, found, resamples, seed, fmt))
        elif by_config:
            typer.echo(runs_module.render(analysis.by_config(found), fmt))
        else:
            typer.echo(runs_module.render(runs_module.compare_rows(found), fmt))


@app.command()
def diff(
    run_id: str = typer.Argument(..., help="A training run (with an evaluator)."),
    top: int = typer.Option(5, "--top", "-n", help="How many examples that moved most to show."),
    resamples: int = typer.Option(10_000, "--resamples", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Baseline -> final of one run: the gain per metric with its interval, and the examples that moved.

    Writes diff.parquet to the run and a section to its card.
    """
    # Local: the analysis imports sentence-transformers (torch), which `stembed --help` must not load.
    from stembed.analysis import diff as diff_module

    with user_errors():
        mlflow_client = runs_module.client(tracking_uri)
        runs_module.get_run(mlflow_client, run_id)
        diffs = diff_module.run_diff(mlflow_client, run_id, resamples, seed)
        typer.echo(f"stembed diff {run_id}\n")
        typer.echo(diff_module.render(diffs, top))
        for written in diff_module.publish(mlflow_client, run_id, diffs, top):
            typer.echo(f"wrote {written}")


@app.command()
def card(run_id: str = typer.Argument(..., help="MLflow run id."), tracking_uri: str = TRACKING_URI) -> None:
    """Print a run's model card."""
    with user_errors():
        typer.echo(runs_module.card_text(runs_module.client(tracking_uri), run_id), nl=False)
