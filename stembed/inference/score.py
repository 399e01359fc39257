"""`stembed score` and `stembed rerank`: a reranker's (cross-encoder's) scores of (query, document) pairs.

`score` is the reranker's `encode`: every row of a table scored. `rerank` ranks a candidate list per
query (the second stage after a bi-encoder's retrieval). Both write the input columns plus theirs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stembed.components.kinds import kind_of
from stembed.errors import StembedError
from stembed.inference.encode import read_input
from stembed.inference.references import load_any_model

SCORE, RANK = "score", "rank"
WRITERS = {  # output suffix -> how pandas writes it
    ".parquet": lambda frame, path: frame.to_parquet(path, index=False),
    ".csv": lambda frame, path: frame.to_csv(path, index=False),
    ".tsv": lambda frame, path: frame.to_csv(path, index=False, sep="\t"),
    ".jsonl": lambda frame, path: frame.to_json(path, orient="records", lines=True, force_ascii=False),
}


def score_file(
    reference: str,
    tracking_uri: str | None,
    input_path: Path,
    columns: str,
    output: Path,
    batch_size: int = 64,
) -> int:
    """`stembed score MODEL`: the input with a `score` column (one per row); returns the row count."""
    frame, pair = _read_pairs(input_path, columns, output, added=(SCORE,))
    scores = _scores(_reranker(reference, tracking_uri), frame, pair, batch_size)
    scored = frame.assign(**{SCORE: scores if scores.ndim == 1 else list(scores)})  # a list per row: labels
    write_atomically(scored, output)
    return len(scored)


def rerank_file(
    reference: str,
    tracking_uri: str | None,
    input_path: Path,
    columns: str,
    output: Path,
    batch_size: int = 64,
    top_k: int | None = None,
) -> tuple[int, int]:
    """`stembed rerank MODEL`: candidates ranked per query (`rank` 1 = best, `score`), the best top_k
    kept; returns (queries, rows written)."""
    if top_k is not None and top_k < 1:
        raise StembedError(f"--top-k {top_k}: give a whole number of 1 or more, or leave it out (keep all).")
    frame, pair = _read_pairs(input_path, columns, output, added=(SCORE, RANK))
    scores = _scores(_reranker(reference, tracking_uri), frame, pair, batch_size)
    if scores.ndim != 1:
        raise StembedError(
            f"MODEL {reference}: scores each pair with {scores.shape[1]} labels (a classifier), so there is "
            "no single score to rank by. Rank with a reranker of one output (num_labels=1), or use "
            "`stembed score` for the per-label scores."
        )
    ranked = rank(frame.assign(**{SCORE: scores}), pair[0], top_k)
    write_atomically(ranked, output)
    return ranked[pair[0]].nunique(dropna=False), len(ranked)


def rank(frame: pd.DataFrame, query: str, top_k: int | None = None) -> pd.DataFrame:
    """Rows grouped by query (in the order queries first appear), each group by `score` descending, with
    `rank` 1..n (ties in input order); only ranks <= top_k when given."""
    ranks = frame.groupby(query, sort=False, dropna=False)[SCORE].rank(method="first", ascending=False)
    group = pd.factorize(frame[query], use_na_sentinel=False)[0]
    ranked = frame.assign(**{RANK: ranks.astype(int)}, _group=group).sort_values(
        ["_group", RANK], kind="stable"
    )
    if top_k is not None:
        ranked = ranked[ranked[RANK] <= top_k]
    return ranked.drop(columns="_group").reset_index(drop=True)


def write_atomically(frame: pd.DataFrame, output: Path) -> None:
    """Write through a temporary file in the same folder, renamed at the end: a reader (or a crash)
    never sees half a file, and an existing output stays whole until the new one is complete."""
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}{output.suffix}")
    try:
        WRITERS[output.suffix](frame, partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def _read_pairs(
    input_path: Path, columns: str, output: Path, added: tuple[str, ...]
) -> tuple[pd.DataFrame, tuple[str, str]]:
    """(the input table, its (query, document) column names), checked before the model loads."""
    if output.suffix not in WRITERS:
        raise StembedError(f"--output {output}: must end in {', '.join(WRITERS)}.")
    pair = tuple(c.strip() for c in columns.split(","))
    if len(pair) != 2 or not all(pair):
        raise StembedError(
            f"--columns {columns}: give the query column and the document column, comma-separated, "
            "e.g. --columns query,document."
        )
    holding = "the query column and the document column, e.g. --columns question,answer"
    frame = read_input(input_path, output, "--columns", list(pair), holding, task="score")
    taken = [c for c in added if c in frame.columns]
    if taken:
        raise StembedError(
            f"--input {input_path}: already has a column named {', '.join(taken)}, which the output adds. "
            f"Rename it in the input (e.g. to label) so both can be kept."
        )
    return frame, pair  # type: ignore[return-value]


def _reranker(reference: str, tracking_uri: str | None) -> Any:
    """The model at reference; a model that embeds instead of scoring pairs is an error naming `encode`."""
    model, _ = load_any_model(reference, tracking_uri)
    kind = kind_of(model)
    if not kind.scores_pairs:
        raise StembedError(
            f"MODEL {reference}: a {kind.name} embeds texts; it does not score (query, document) pairs. "
            f"Use `stembed encode {reference} -i texts.csv -c text -o embeddings.npy` for its embeddings, "
            "or give `stembed score` / `stembed rerank` a reranker (a cross-encoder, e.g. a run of "
            "model=tiny_cross loss=ce_bce)."
        )
    return model


def _scores(model: Any, frame: pd.DataFrame, pair: tuple[str, str], batch_size: int) -> np.ndarray:
    """model.predict over the rows' (query, document) pairs: one float per row (one per label for a
    classifier with several labels), as the logged MLflow model answers."""
    queries, documents = (frame[c].fillna("").astype(str).tolist() for c in pair)
    scores = model.predict(
        list(zip(queries, documents, strict=True)), batch_size=batch_size, show_progress_bar=True
    )
    scores = np.asarray(scores, dtype=np.float64)
    return scores[:, 0] if scores.ndim == 2 and scores.shape[1] == 1 else scores
