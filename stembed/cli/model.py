"""Using a model: `eval`, `encode`, `score`, `rerank`, `export`, `serve`, `ship`."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from stembed.cli.app import TRACKING_URI, app, user_errors
from stembed.hub import decide_offline


@app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def eval_(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(help="Hub id, local directory, runs:/<id>/model, models:/<name>@<alias>.")
    ],
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log an MLflow run.")] = False,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Evaluate a model with the `data` and `evaluator` groups: stembed eval MODEL +experiment=stsb ..."""
    decide_offline()  # before anything imports huggingface_hub
    # Local: the inference modules import torch and the hub libraries, which `stembed --help` must not load.
    from stembed.inference.evaluate_model import run_eval

    with user_errors():
        metrics, run_id = run_eval(model, list(ctx.args), log=not no_log, tracking_uri=tracking_uri)
    width = max(len(name) for name in metrics)
    for name, value in metrics.items():
        typer.echo(f"{name:<{width}}  {value:.4f}")
    if run_id:
        typer.echo(f"logged as MLflow run {run_id}")


@app.command()
def encode(
    model: Annotated[
        str, typer.Argument(help="Hub id, local directory, runs:/<id>/model or models:/<name>@<alias>.")
    ],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="csv/tsv/jsonl/json/parquet file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.npy or FILE.parquet")],
    column: Annotated[str, typer.Option("--column", "-c", help="The column with the texts.")] = "text",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 64,
    backend: Annotated[
        str,
        typer.Option(
            help="torch (model.encode), torch-bf16, onnx, or onnx-int8 (exported and quantized first)."
        ),
    ] = "torch",
    prompt_name: Annotated[
        str | None,
        typer.Option("--prompt-name", "-p", help="A prompt saved with the model (e.g. query, document)."),
    ] = None,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Embed a column of a file with a model (with one of its saved prompts: --prompt-name query)."""
    decide_offline()  # before anything imports huggingface_hub
    # Local: the inference modules import torch and the hub libraries, which `stembed --help` must not load.
    from stembed.inference.encode import encode_model_file

    with user_errors():
        rows, dims = encode_model_file(
            model, tracking_uri, input_path, column, output, batch_size, backend, prompt_name
        )
    typer.echo(f"{rows} embeddings of {dims} dimensions written to {output}")


PAIRS_INPUT = typer.Option("--input", "-i", help="csv/tsv/jsonl/json/parquet file of (query, document) rows.")
PAIRS_OUTPUT = typer.Option("--output", "-o", help="FILE.parquet, .csv, .tsv or .jsonl")
PAIR_COLUMNS = typer.Option("--columns", "-c", help="The query column and the document column.")
RERANKER = typer.Argument(help="Reranker: run id, runs:/<id>/model, models:/<name>@<alias>, folder, hub id.")


def _scoring() -> ModuleType:
    """stembed.inference.score, imported when `score` or `rerank` runs."""
    # Local: the inference modules import torch and the hub libraries, which `stembed --help` must not load.
    from stembed.inference import score as scoring

    return scoring


@app.command()
def score(
    model: Annotated[str, RERANKER],
    input_path: Annotated[Path, PAIRS_INPUT],
    output: Annotated[Path, PAIRS_OUTPUT],
    columns: Annotated[str, PAIR_COLUMNS] = "query,document",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 64,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Score (query, document) pairs with a reranker: the input plus a `score` column."""
    decide_offline()  # before anything imports huggingface_hub
    with user_errors():
        rows = _scoring().score_file(model, tracking_uri, input_path, columns, output, batch_size)
    typer.echo(f"{rows} pairs scored, written to {output}")


@app.command()
def rerank(
    model: Annotated[str, RERANKER],
    input_path: Annotated[Path, PAIRS_INPUT],
    output: Annotated[Path, PAIRS_OUTPUT],
    columns: Annotated[str, PAIR_COLUMNS] = "query,document",
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="Keep the best K per query.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b")] = 64,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Rank candidate documents per query with a reranker: `rank` (1 = best) and `score` added."""
    decide_offline()  # before anything imports huggingface_hub
    with user_errors():
        queries, rows = _scoring().rerank_file(
            model, tracking_uri, input_path, columns, output, batch_size, top_k
        )
    typer.echo(f"{queries} queries reranked, {rows} rows written to {output}")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Hub id, local directory, or runs:/<id>/model.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for model.onnx and the tokenizer.")
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format (onnx).")] = "onnx",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    quantize: Annotated[
        str | None, typer.Option(help="int8: also write model_int8.onnx (onnxruntime dynamic quantization).")
    ] = None,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Export a model to ONNX; print its parity with PyTorch (cosine and max |diff| of embeddings)."""
    decide_offline()  # before anything imports huggingface_hub
    # Local: the inference modules import torch and the hub libraries, which `stembed --help` must not load.
    from stembed.inference.export import export_model

    with user_errors():
        report = export_model(model, tracking_uri, output, fmt, opset, quantize)
    typer.echo(f"wrote {report.path} ({report.megabytes:.1f} MiB)")
    typer.echo(
        f"parity: cosine to pytorch mean {report.mean_cosine:.6f}, min {report.min_cosine:.6f}; "
        f"max |onnx - pytorch| = {report.max_abs_diff:.2e} over {report.sentences} sentences"
    )


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="Run id, runs:/<id>/model or models:/<name>@<alias>.")],
    port: Annotated[int, typer.Option("--port", "-p", help="Port to listen on.")] = 5001,
    host: Annotated[str, typer.Option(help="Interface; 127.0.0.1 keeps it on this machine.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Serve a logged model with MLflow at /invocations: texts in (a reranker: query, document rows)."""
    # Local: the server command reads the MLflow store, and `stembed --help` must not load MLflow.
    from stembed.inference.serve import serve as serve_model

    with user_errors():
        serve_model(model, host, port, workers, tracking_uri)


@app.command()
def ship(
    run_id: Annotated[str, typer.Argument(help="The training run (`stembed runs` lists them).")],
    max_drop: Annotated[
        float, typer.Option(help="Largest loss in the primary metric accepted for a smaller/faster variant.")
    ] = 0.01,
    register: Annotated[
        str | None, typer.Option(help="Register the chosen variant as a version of this model.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Default: <run dir>/ship.")] = None,
    dims: Annotated[
        str | None, typer.Option(help="Dimensions to try, e.g. 64,128,256 (default: standard truncations).")
    ] = None,
    reranker: Annotated[
        str | None,
        typer.Option(
            help="Also measure retrieve-then-rerank with this reranker: run id, runs:/<id>/model, "
            "models:/<name>@<alias> or folder."
        ),
    ] = None,
    rerank_k: Annotated[
        str | None, typer.Option(help="Candidates per query the reranker reorders (default: 5,10,20,50).")
    ] = None,
    rerank_every_variant: Annotated[
        bool,
        typer.Option(
            "--rerank-every-variant",
            help="Rerank after every variant of the grid (default: the reference and the chosen one).",
        ),
    ] = False,
    min_gain: Annotated[
        float | None,
        typer.Option(
            help="Instead of --max-drop: the cheapest variant at least this much above the reference."
        ),
    ] = None,
    tracking_uri: str = TRACKING_URI,
) -> None:
    """Measure deployment variants (runtime x dimensions x precision [+ rerank@k]) on the run's eval data;
    ship one."""
    decide_offline()  # before anything imports huggingface_hub
    # Local: the inference modules import torch and the hub libraries, which `stembed --help` must not load.
    from stembed.inference import ship as shipping

    with user_errors():
        wanted = shipping.whole_numbers("--dims", dims)
        rerank = shipping.reranking(
            reranker, shipping.whole_numbers("--rerank-k", rerank_k), rerank_every_variant
        )
        result = shipping.ship(run_id, max_drop, output, register, tracking_uri, wanted, rerank, min_gain)
    typer.echo(shipping.table_markdown(result))
    for note in result.notes:
        typer.echo(f"note: {note}")
    chosen = result.chosen
    rule = f"max drop {max_drop}" if min_gain is None else f"min gain {min_gain}"
    typer.echo(
        f"chosen ({rule}): {chosen.variant.label}  {result.metric_name} {chosen.metric:.4f} "
        f"({chosen.delta:+.4f}); written to {result.output}"
    )
    if result.registered:
        typer.echo(f"registered: models:/{register}/{result.registered}")
