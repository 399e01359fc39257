"""The `stembed` command. Keep imports light: `stembed --help` must not import torch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

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
    `stembed train --help` (Hydra's help: config groups and options). `--debug` shows tracebacks.
    """
    from stembed.train import run_hydra

    args = list(ctx.args)
    if "--debug" in args:  # show tracebacks for input errors too
        args.remove("--debug")
        os.environ["STEMBED_DEBUG"] = os.environ["HYDRA_FULL_ERROR"] = "1"
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


@app.command()
def ui(
    port: int = typer.Option(5000, help="Port to serve on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 127.0.0.1 keeps it on this machine."),
    backend_store_uri: str = typer.Option(
        None, help="Tracking store; default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db here."
    ),
) -> None:
    """Open the MLflow UI on the project's store."""
    from stembed.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(backend_store_uri, Path("outputs"))
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow_bin is None:
        typer.echo("The `mlflow` command is not installed in this environment: run `make install`.", err=True)
        raise typer.Exit(2)
    typer.echo(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C to stop)")
    command = [mlflow_bin, "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    raise typer.Exit(subprocess.call(command))


config_app = typer.Typer(help="List, show and validate the shipped config groups.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("list")
def config_list() -> None:
    """Config groups and their options (GROUP=OPTION on the command line)."""
    from stembed.config_commands import groups

    found = groups()
    width = max(map(len, found)) + 1
    for group, options in found.items():
        typer.echo(f"{group:<{width}} {', '.join(options)}")


@config_app.command("show")
def config_show(name: str = typer.Argument(..., help="GROUP/OPTION, e.g. loss/mnrl, or train")) -> None:
    """Print one config file."""
    from stembed.config_commands import config_file

    with user_errors():
        typer.echo(config_file(name).read_text(encoding="utf-8"), nl=False)


@config_app.command("validate")
def config_validate(
    presets: Annotated[list[str] | None, typer.Argument(help="Presets to check (default: all).")] = None,
) -> None:
    """Compose every preset; check targets import, their arguments and the trainer keys. Loads no model."""
    from stembed.config_commands import validate

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


TRACKING_URI = typer.Option(
    None, "--tracking-uri", help="Default: $MLFLOW_TRACKING_URI, else outputs/mlflow.db."
)


@app.command()
def runs(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this MLflow experiment."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Recent runs: name, status, duration, key metric, start time."""
    from stembed import runs as runs_module

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
    limit: int = typer.Option(100, "--limit", "-n"),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    tracking_uri: str = TRACKING_URI,
) -> None:
    """One table: the config keys that differ between runs, then their metrics, best first."""
    from stembed import runs as runs_module
    from stembed.errors import StembedError

    with user_errors():
        if bool(run_ids) + bool(experiment) + bool(sweep) != 1:
            raise StembedError(
                "compare: give run ids, or --experiment NAME, or --sweep PARENT_RUN_ID (one of them)."
            )
        mlflow_client = runs_module.client(tracking_uri)
        if run_ids:
            found = [runs_module.get_run(mlflow_client, run_id) for run_id in run_ids]
        elif sweep:
            runs_module.get_run(mlflow_client, sweep)
            found = runs_module.search(mlflow_client, None, limit, f"tags.mlflow.parentRunId = '{sweep}'")
        else:
            found = runs_module.search(mlflow_client, experiment, limit)
        typer.echo(runs_module.render(runs_module.compare_rows(found), fmt))


@app.command()
def card(run_id: str = typer.Argument(..., help="MLflow run id."), tracking_uri: str = TRACKING_URI) -> None:
    """Print a run's model card."""
    from stembed import runs as runs_module

    with user_errors():
        typer.echo(runs_module.card_text(runs_module.client(tracking_uri), run_id), nl=False)


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="Hub id, local directory, or runs:/<id>/model, models:/<name>/<v>.")
    ],
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log an MLflow run.")] = False,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Evaluate a model with the `data` and `evaluator` groups: stembed eval MODEL +experiment=stsb ..."""
    from stembed.evaluation_run import run_eval

    with user_errors():
        metrics, run_id = run_eval(model, list(ctx.args), log=not no_log, tracking_uri=tracking_uri)
    width = max(len(name) for name in metrics)
    for name, value in metrics.items():
        typer.echo(f"{name:<{width}}  {value:.4f}")
    if run_id:
        typer.echo(f"logged as MLflow run {run_id}")


@app.command()
def encode(
    model: Annotated[str, typer.Argument(help="Hub id, local directory, or runs:/<id>/model.")],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="csv/tsv/jsonl/json/parquet file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.npy or FILE.parquet")],
    column: Annotated[str, typer.Option("--column", "-c", help="The column with the texts.")] = "text",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 64,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Embed a column of a file with a model."""
    from stembed.inference import encode_file, load_any_model

    with user_errors():
        loaded, _ = load_any_model(model, tracking_uri)
        rows, dims = encode_file(loaded, input_path, column, output, batch_size)
    typer.echo(f"{rows} embeddings of {dims} dimensions written to {output}")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Hub id, local directory, or runs:/<id>/model.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for model.onnx and the tokenizer.")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format (onnx).")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Export a model to ONNX and print its parity with PyTorch (max abs diff of embeddings)."""
    from stembed.errors import StembedError
    from stembed.export import FORMATS, export_onnx
    from stembed.inference import load_any_model

    with user_errors():
        if fmt not in FORMATS:
            raise StembedError(f"--format {fmt}: not supported. Formats: {', '.join(FORMATS)}.")
        loaded, _ = load_any_model(model, tracking_uri)
        report = export_onnx(loaded, output, opset)
    typer.echo(f"wrote {report.path} ({report.megabytes:.1f} MiB)")
    typer.echo(f"parity: max |onnx - pytorch| = {report.max_abs_diff:.2e} over {report.sentences} sentences")


@contextmanager
def user_errors() -> Iterator[None]:
    """Print a StembedError as one paragraph and exit 2 (traceback with STEMBED_DEBUG=1)."""
    from stembed.errors import EXIT_USAGE, StembedError

    try:
        yield
    except StembedError as err:
        if os.environ.get("STEMBED_DEBUG") == "1":
            raise
        typer.echo(f"stembed: error: {err}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@app.command()
def version() -> None:
    """Print stembed's version."""
    from stembed import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: run the command, then exit without the interpreter's teardown."""
    try:
        app()
    except SystemExit as done:
        _exit_now(done.code)
    _exit_now(0)


def _exit_now(code: int | str | None) -> None:
    """Exit as Python would, but skip freeing every object one by one at shutdown.

    After torch has been used, that teardown takes 2-3 s of a run's wall time (measured in
    scripts/bench_overhead.py) and does nothing a finished process needs. What it does that matters
    still happens, in Python's own order: thread pools are shut down and non-daemon threads waited
    for, the atexit handlers run (MLflow, the sweep's parent run), logs and output streams are flushed.
    """
    import atexit
    import logging
    import threading

    if isinstance(code, str):  # sys.exit("message") prints the message, as Python does
        print(code, file=sys.stderr)
        code = 1
    code = code or 0
    if "torch" not in sys.modules:  # nothing slow to skip (--help, config commands)
        sys.exit(code)
    threading._shutdown()  # type: ignore[attr-defined]  # Python's first step of finalizing
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
