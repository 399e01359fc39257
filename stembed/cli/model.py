"""Using a model: `eval`, `encode`, `export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stembed.cli.app import TRACKING_URI, app, user_errors


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
    from stembed.hub import decide_offline
    from stembed.inference.evaluate import run_eval

    decide_offline()  # before anything imports huggingface_hub
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
    prompt_name: Annotated[
        str | None,
        typer.Option("--prompt-name", "-p", help="A prompt saved with the model (e.g. query, document)."),
    ] = None,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Embed a column of a file with a model (with one of its saved prompts: --prompt-name query)."""
    from stembed.hub import decide_offline
    from stembed.inference.encode import encode_file, load_any_model

    decide_offline()  # before anything imports huggingface_hub
    with user_errors():
        loaded, _ = load_any_model(model, tracking_uri)
        rows, dims = encode_file(loaded, input_path, column, output, batch_size, prompt_name)
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
    from stembed.hub import decide_offline
    from stembed.inference.encode import load_any_model
    from stembed.inference.export import FORMATS, export_onnx

    decide_offline()  # before anything imports huggingface_hub
    with user_errors():
        if fmt not in FORMATS:
            raise StembedError(f"--format {fmt}: not supported. Formats: {', '.join(FORMATS)}.")
        loaded, _ = load_any_model(model, tracking_uri)
        report = export_onnx(loaded, output, opset)
    typer.echo(f"wrote {report.path} ({report.megabytes:.1f} MiB)")
    typer.echo(f"parity: max |onnx - pytorch| = {report.max_abs_diff:.2e} over {report.sentences} sentences")
