"""Writing ship/: the table (markdown and csv), the manifest, the card's section, and pruning to the
chosen runtime's files.

ship/ holds `model/` (the SentenceTransformer: the tokenizer's home for every runtime, and the card),
each measured runtime's files while the grid runs (Runtime.files), then only the chosen one's,
`reranker/` where the chosen row reranks (RerankStage.files), `ship.json`, `table.md` and `table.csv`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from stembed.errors import StembedError
from stembed.inference.runtimes import MODEL_DIR, RERANKER_DIR, RERANKERS, RUNTIMES, Runtime
from stembed.inference.variants import Row, ShipResult, Variant

MANIFEST, TABLE_MD, TABLE_CSV = "ship.json", "table.md", "table.csv"
RETRIEVAL_FIELDS = ("runtime", "dims", "precision")  # ship.json's variant without a reranker
SIMILARITY = {"binary": "hamming", "binary-rescore": "hamming, then float query x bits"}  # else cosine
LOADED = "from stembed.inference.ship import load_shipped; shipped = load_shipped('<this directory>'); "
LOAD = LOADED + "stored = shipped.encode(documents); queries = shipped.encode_query(texts)"
STORE = {
    "float32": "store float32 vectors and rank by cosine",
    "int8": "quantize with int8_ranges (sentence_transformers.quantization.quantize_embeddings) and "
    "rank by cosine/dot of the int8 values",
    "binary": "store ubinary bits (quantize_embeddings precision='ubinary') and rank by Hamming distance",
    "binary-rescore": "store documents as ubinary bits, keep queries float32; retrieve "
    "rescore_multiplier x top_k candidates by Hamming distance, then rescore them by the float "
    "query's dot product with their unpacked bits "
    "(sentence_transformers.quantization.semantic_search_faiss(..., rescore=True))",
}


def default_output(run: Any) -> Path:
    """<run dir>/ship, or outputs/ship/<run id> for a run without a local directory."""
    run_dir = run.data.tags.get("stembed.run_dir")
    if run_dir and Path(run_dir).is_dir():
        return Path(run_dir) / "ship"
    return Path("outputs") / "ship" / run.info.run_id


def clear(output: Path) -> None:
    """Replace an earlier ship/ (it has a ship.json); never empty a directory that holds other things."""
    if (output / MANIFEST).is_file():
        shutil.rmtree(output)
    elif output.exists() and any(output.iterdir()):
        raise StembedError(
            f"--output {output}: the directory exists and is not an earlier `stembed ship` output. "
            "Give a new or empty directory."
        )


def table_markdown(result: ShipResult) -> str:
    """The grid as a markdown table, best first; the chosen row marked. With reranked rows, speed is
    per query (a query: one text encoded, then its k pairs scored) and model MB bi-encoder + reranker."""
    reranked = any(r.variant.reranker for r in result.rows)
    speed = "queries/s | p50 ms / query" if reranked else "texts/s | p50 ms"
    head = (
        f"| variant | {result.metric_name} | delta [95% CI] | {speed} | model MB | "
        "index MB / 1M docs |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {'**' + r.variant.label + '** (chosen)' if r.chosen else r.variant.label} | {r.metric:.4f} | "
        f"{_delta(r)} | {r.texts_per_second:.0f} | {r.p50_ms:.1f} | {_model_mb(r)} | "
        f"{r.index_mb_per_million:.0f} |"
        for r in result.rows
    ]
    return head + "\n".join(lines) + "\n"


def _model_mb(row: Row) -> str:
    """model MB; bi-encoder + reranker where a reranker follows retrieval."""
    if row.reranker_mb and row.variant.runtime:
        return f"{_mb(row.model_mb - row.reranker_mb)} + {_mb(row.reranker_mb)}"
    return _mb(row.model_mb)


def _delta(row: Row) -> str:
    if row.low != row.low:  # nan: the reference row, or no per-example scores
        return f"{row.delta:+.4f}"
    return f"{row.delta:+.4f} [{row.low:+.4f}, {row.high:+.4f}]"


def _mb(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def write(result: ShipResult, run: Any, ranges_of: dict, max_drop: float, fingerprint: str) -> None:
    """table.csv, table.md, ship.json, and the table appended to the shipped model's card."""

    out = result.output
    records = [
        asdict(r.variant) | {k: v for k, v in asdict(r).items() if k != "variant"} for r in result.rows
    ]
    pd.DataFrame(records).to_csv(out / TABLE_CSV, index=False)
    (out / TABLE_MD).write_text(table_markdown(result))
    (out / MANIFEST).write_text(json.dumps(manifest(result, run, ranges_of, max_drop, fingerprint), indent=2))
    card = out / MODEL_DIR / "README.md"
    if card.is_file():
        section = f"\n\n## Deployment variants (stembed ship)\n\n{table_markdown(result)}"
        card.write_text(card.read_text(encoding="utf-8") + section, encoding="utf-8")


def manifest(result: ShipResult, run: Any, ranges_of: dict, max_drop: float, fingerprint: str) -> dict:
    """ship.json: the chosen variant, its metric, and what loading and querying it needs."""
    chosen = result.chosen.variant
    runtime = RUNTIMES.get(chosen.runtime)  # None: the reranker alone
    ranges = ranges_of[(chosen.runtime, chosen.dims)] if chosen.precision == "int8" else None
    return {
        "run_id": run.info.run_id,
        "variant": {k: v for k, v in asdict(chosen).items() if chosen.reranker or k in RETRIEVAL_FIELDS},
        "label": chosen.label,
        "metric": {"name": result.metric_name, "value": result.chosen.metric, "delta": result.chosen.delta},
        "max_drop": max_drop,
        "min_gain": result.min_gain,
        "data_fingerprint": fingerprint,
        "model": MODEL_DIR,
        "onnx_model": runtime.onnx_model if runtime else None,
        "int8_ranges": ranges.tolist() if ranges is not None else None,
        "similarity": SIMILARITY.get(chosen.precision, "cosine") if runtime else None,
        "reranker": _reranker_entry(result) if chosen.reranker else None,
        "load": load_instructions(chosen),
        "how": how_to_query(chosen, runtime),
    }


def load_instructions(variant: Variant) -> str:
    """ship.json's load: encode (and rerank each query's candidates), or the reranker alone."""
    if not variant.reranker:
        return LOAD
    if not variant.runtime:
        return LOADED + "scores = shipped.score_pairs(pairs)"
    return LOAD + "; best_first = shipped.rerank(query, candidates)"


def _reranker_entry(result: ShipResult) -> dict:
    """ship.json's reranker: where it is, what it was given as, how many candidates it reorders."""
    variant = result.chosen.variant
    stage = RERANKERS[variant.reranker]
    return {
        "stage": stage.name,
        "model": RERANKER_DIR,
        "source": result.reranker,
        "top_k": variant.rerank_k or None,
    }


def how_to_query(variant: Variant, runtime: Runtime | None) -> str:
    """One sentence for ship.json: how to encode, truncate and store with this variant, and rerank."""
    if runtime is None:
        stage = RERANKERS[variant.reranker]
        return f"score (query, candidate) pairs with {stage.name} ({stage.usage}): every candidate, no index."
    how = f"{runtime.name} ({runtime.usage})" if runtime.usage else runtime.name
    sentence = f"encode with {how}, keep the first {variant.dims} dimensions, {STORE[variant.precision]}"
    if variant.reranker:
        stage = RERANKERS[variant.reranker]
        sentence += f"; rerank each query's top {variant.rerank_k} with {stage.name} ({stage.usage})"
    return sentence + "."


def prune(output: Path, chosen: Variant) -> None:
    """Keep only the chosen runtime's and reranking stage's files (model/ always stays: the tokenizer's
    home), then let the runtime put its files where it loads them from."""
    kept = [RUNTIMES.get(chosen.runtime), RERANKERS.get(chosen.reranker)]
    for stage in [*RUNTIMES.values(), *RERANKERS.values()]:
        if stage in kept:
            continue
        for name in stage.files:
            path = output / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    if kept[0] is not None:
        kept[0].finish(output)
