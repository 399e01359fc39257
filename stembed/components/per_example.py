"""Per-example scores of every evaluator, saved as `eval/<prefix><evaluator>.parquet` artifacts.

sentence-transformers' evaluators return only averages; a paired significance test (stembed.analysis)
needs every example's score. The embeddings the evaluators computed are recorded while they run
(`recording`, used by `run_evaluators`) and reused here, so nothing is encoded twice.

Each table carries in its parquet metadata how each metric the evaluator reports is recomputed from
its columns (`stembed.metrics`: metric key -> {"mean": column} | {"pearson"|"spearman": [x, y]} |
{"macro_f1": [gold, predicted]}), and a fingerprint of the examples and candidates it was computed on.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sentence_transformers.cross_encoder.evaluation import CrossEncoderCorrelationEvaluator
from sentence_transformers.sentence_transformer.evaluation import (
    BinaryClassificationEvaluator,
    EmbeddingSimilarityEvaluator,
    InformationRetrievalEvaluator,
)
from sentence_transformers.util import pairwise_cos_sim, pairwise_dot_score

from stembed.components.label_routing import LabelRetrievalEvaluator
from stembed.errors import debug_requested

if TYPE_CHECKING:
    import pandas as pd

ARTIFACT_DIR = "eval"
KIND, METRICS, EXAMPLES, EVALUATOR = (
    "stembed.kind",
    "stembed.metrics",
    "stembed.examples",
    "stembed.evaluator",
)
_CACHE = "_stembed_embeddings"
QUERY_CHUNK = 256


def leaves(evaluators: list[Any]) -> Iterator[Any]:
    """Every evaluator, with SequentialEvaluators opened up; None skipped."""
    for evaluator in evaluators:
        if evaluator is None:
            continue
        inner = getattr(evaluator, "evaluators", None)
        if isinstance(inner, list | tuple):
            yield from leaves(list(inner))
        else:
            yield evaluator


RECORDED = ("embed_inputs", "score_pairs")  # what evaluators compute per text (or per pair, for rerankers)


@contextmanager
def recording(evaluators: list[Any]) -> Iterator[None]:
    """Keep what each evaluator's `embed_inputs` (a reranker's `score_pairs`) returns (until
    `forget_recorded`)."""
    patched = []
    for evaluator in leaves(evaluators):
        methods = [name for name in RECORDED if getattr(evaluator, name, None) is not None]
        if not methods:
            continue
        cache: dict[Any, Any] = {}
        evaluator.__dict__[_CACHE] = cache
        for name in methods:
            setattr(evaluator, name, _recorder(getattr(evaluator, name), cache))
        patched.append((evaluator, methods))
    try:
        yield
    finally:
        for evaluator, methods in patched:
            for name in methods:
                evaluator.__dict__.pop(name, None)


def _recorder(compute: Any, cache: dict[Any, Any]) -> Any:
    def recorded(model: Any, sentences: Any, *args: Any, **kwargs: Any) -> Any:
        output = compute(model, sentences, *args, **kwargs)
        cache[_key(sentences, args, kwargs)] = output
        return output

    return recorded


def _key(sentences: Any, args: tuple, kwargs: dict[str, Any]) -> tuple:
    texts = tuple(s if isinstance(s, str) else repr(s) for s in sentences)
    return (texts, repr(args), repr(sorted(kwargs.items())))


def _embed(evaluator: Any, model: Any, sentences: list, *args: Any, **kwargs: Any) -> Any:
    """The evaluator's embeddings of sentences: recorded during its run when there, else encoded."""
    return _recorded(evaluator, "embed_inputs", model, sentences, *args, **kwargs)


def _recorded(evaluator: Any, method: str, model: Any, inputs: list, *args: Any, **kwargs: Any) -> Any:
    cache = evaluator.__dict__.get(_CACHE) or {}
    found = cache.get(_key(inputs, args, kwargs))
    return found if found is not None else getattr(evaluator, method)(model, inputs, *args, **kwargs)


def forget_recorded(evaluators: list[Any]) -> None:
    """Drop the embeddings `recording` kept: they are stale once the model trains on."""
    for evaluator in leaves(evaluators):
        evaluator.__dict__.pop(_CACHE, None)


def tables(evaluators: list[Any], model: Any) -> dict[str, pd.DataFrame]:
    """{evaluator name: per-example table} for every evaluator stembed knows how to score per example."""

    builders = [
        (EmbeddingSimilarityEvaluator, similarity_table),
        (InformationRetrievalEvaluator, retrieval_table),
        (LabelRetrievalEvaluator, label_table),
        (BinaryClassificationEvaluator, binary_table),
        (CrossEncoderCorrelationEvaluator, pair_score_table),
    ]
    found: dict[str, pd.DataFrame] = {}
    for evaluator in leaves(evaluators):
        builder = next((b for cls, b in builders if isinstance(evaluator, cls)), None)
        try:
            table = builder(evaluator, model) if builder else None
        except Exception as err:  # an extra artifact must not cost the user the trained model
            if debug_requested():
                raise
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            print(
                f"stembed: warning: per-example scores of '{evaluator.name}' not saved: "
                f"{type(err).__name__}: {reason}",
                file=sys.stderr,
            )
            continue
        if table is None:
            print(
                f"stembed: note: no per-example scores for {type(evaluator).__name__} "
                f"'{evaluator.name}' (significance tests skip it)",
                file=sys.stderr,
            )
            continue
        name = evaluator.name or type(evaluator).__name__
        table.attrs[EVALUATOR] = name
        found[name] = table
    return found


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Parquet with the table's attrs (kind, metric recipes, example fingerprint) as schema metadata."""

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata.update({key.encode(): json.dumps(value).encode() for key, value in table.attrs.items()})
    pq.write_table(arrow.replace_schema_metadata(metadata), path)


def read_table(path: Path) -> pd.DataFrame:
    """A per-example table written by `write_table`, its stembed metadata back in `attrs`."""

    arrow = pq.read_table(path)
    table = arrow.to_pandas()
    metadata = arrow.schema.metadata or {}
    table.attrs = {
        key.decode(): json.loads(value) for key, value in metadata.items() if key.startswith(b"stembed.")
    }
    return table


def example_ids(*columns: list) -> list[str]:
    """A stable id per example from its texts; repeated examples get #2, #3, ..."""
    seen: dict[str, int] = {}
    ids = []
    for values in zip(*columns, strict=True):
        digest = _digest("\x1f".join(map(str, values)))[:16]
        seen[digest] = seen.get(digest, 0) + 1
        ids.append(digest if seen[digest] == 1 else f"{digest}#{seen[digest]}")
    return ids


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fingerprint(*parts: Any) -> str:
    """Examples, gold values and candidates an evaluation ran on: equal fingerprints, comparable runs."""
    return _digest(json.dumps([sorted(map(str, part)) for part in parts]))[:16]


def _metric_name(evaluator: Any, key: str) -> str:
    return f"{evaluator.name}_{key}" if evaluator.name else key


def similarity_table(evaluator: Any, model: Any) -> pd.DataFrame | None:
    """Pairs: the predicted similarity per similarity function and the gold score."""
    if evaluator.precision not in (None, "float32"):
        return None
    functions = _pair_functions(evaluator, model)
    if not functions:
        return None
    first = _embed(evaluator, model, evaluator.sentences1)
    second = _embed(evaluator, model, evaluator.sentences2)
    gold = [float(score) for score in evaluator.scores]

    def recipes(name: str) -> list[tuple[str, str]]:
        return [(f"{statistic}_{name}", statistic) for statistic in ("pearson", "spearman")]

    return _pair_table(evaluator, functions, first, second, gold, recipes, "similarity")


def pair_score_table(evaluator: Any, model: Any) -> pd.DataFrame:
    """A reranker's pairs: its score and the gold score (CrossEncoderCorrelationEvaluator)."""
    pairs = [list(pair) for pair in evaluator.sentence_pairs]
    scores = model.predict(
        pairs, prompt_name=evaluator.prompt_name, batch_size=evaluator.batch_size, show_progress_bar=False
    )
    s1, s2 = [str(p[0]) for p in pairs], [str(p[1]) for p in pairs]
    gold = [float(score) for score in evaluator.scores]
    column = "score_reranker"  # score_*: the predicted similarity, as in the bi-encoder's tables
    table = pd.DataFrame(
        {"example_id": example_ids(s1, s2), "sentence1": s1, "sentence2": s2, "gold": gold, column: scores}
    )
    metrics = {_metric_name(evaluator, key): {key: [column, "gold"]} for key in ("pearson", "spearman")}
    table.attrs = {
        KIND: "similarity",
        METRICS: metrics,
        EXAMPLES: _fingerprint(zip(table.example_id, gold, strict=True)),
    }
    return table


def binary_table(evaluator: Any, model: Any) -> pd.DataFrame | None:
    """Pairs labelled 0/1: the similarity per similarity function (higher = more similar) and the label."""

    functions = _pair_functions(evaluator, model)
    try:
        unique = list({*evaluator.sentences1, *evaluator.sentences2})  # as the evaluator embeds them
    except TypeError:
        return None
    if not functions:
        return None
    embedded = dict(zip(unique, _embed(evaluator, model, unique), strict=True))
    first = np.stack([embedded[s] for s in evaluator.sentences1])
    second = np.stack([embedded[s] for s in evaluator.sentences2])
    gold = [float(label) for label in evaluator.labels]

    def recipes(name: str) -> list[tuple[str, str]]:
        keys = (("accuracy", "best_accuracy"), ("f1", "best_f1"), ("ap", "average_precision"))
        return [(f"{name}_{key}", recipe) for key, recipe in keys]

    return _pair_table(evaluator, functions, first, second, gold, recipes, "binary")


def _pair_functions(evaluator: Any, model: Any) -> dict[str, Callable[..., Any]]:
    """The evaluator's pairwise similarity functions that a table can reproduce (cosine, dot)."""

    known = {"cosine": pairwise_cos_sim, "dot": pairwise_dot_score}
    names = evaluator.similarity_fn_names or [model.similarity_fn_name]
    return {name: known[name] for name in names if name in known}


def _pair_table(
    evaluator: Any,
    functions: dict[str, Callable[..., Any]],
    first: Any,
    second: Any,
    gold: list[float],
    recipes: Callable[[str], list[tuple[str, str]]],
    kind: str,
) -> pd.DataFrame:
    """One row per pair (texts, gold, a score per function) and how each metric is recomputed from it."""

    s1, s2 = list(map(str, evaluator.sentences1)), list(map(str, evaluator.sentences2))
    table = pd.DataFrame({"example_id": example_ids(s1, s2), "sentence1": s1, "sentence2": s2, "gold": gold})
    metrics: dict[str, dict[str, list[str]]] = {}
    for name, function in functions.items():
        table[f"score_{name}"] = function(first, second).detach().cpu().float().numpy()
        for key, recipe in recipes(name):
            metrics[_metric_name(evaluator, key)] = {recipe: [f"score_{name}", "gold"]}
    table.attrs = {
        KIND: kind,
        METRICS: metrics,
        EXAMPLES: _fingerprint(zip(table.example_id, gold, strict=True)),
    }
    return table


def retrieval_table(evaluator: Any, model: Any) -> pd.DataFrame | None:
    """Queries: rank and score of the best-ranked relevant document, and each metric per query."""

    queries = _embed(
        evaluator,
        model,
        evaluator.queries,
        encode_fn_name="query",
        prompt_name=evaluator.query_prompt_name,
        prompt=evaluator.query_prompt,
    )
    chunks = []
    for start in range(0, len(evaluator.corpus), evaluator.corpus_chunk_size):
        chunk = evaluator.corpus[start : start + evaluator.corpus_chunk_size]
        chunks.append(
            _embed(
                evaluator,
                model,
                chunk,
                encode_fn_name="document",
                prompt_name=evaluator.corpus_prompt_name,
                prompt=evaluator.corpus_prompt,
            )
        )
    corpus = torch.cat([_dense(c) for c in chunks])
    functions = evaluator.score_functions or {model.similarity_fn_name: model.similarity}  # as the evaluator
    query_texts = list(map(str, evaluator.queries))
    table = pd.DataFrame({"example_id": example_ids(query_texts), "query": query_texts})
    # Ties are broken by ascending corpus id, as the evaluator does.
    tie_key = np.argsort(np.argsort(np.array(evaluator.corpus_ids, dtype=object), kind="stable"))
    position = {cid: i for i, cid in enumerate(evaluator.corpus_ids)}
    relevant = [
        (
            [position[c] for c in evaluator.relevant_docs[qid] if c in position],
            len(evaluator.relevant_docs[qid]),
        )
        for qid in evaluator.queries_ids
    ]
    metrics: dict[str, dict[str, str]] = {}
    queries = _dense(queries)
    for name, function in functions.items():
        columns: dict[str, list[float]] = {}
        for start in range(0, len(queries), QUERY_CHUNK):  # a bounded slice of the score matrix
            scores = function(queries[start : start + QUERY_CHUNK], corpus).detach().cpu().float().numpy()
            part = _retrieval_columns(evaluator, scores, tie_key, relevant[start : start + QUERY_CHUNK])
            for key, values in part.items():
                columns.setdefault(key, []).extend(values)
        for key, values in columns.items():
            table[f"{name}_{key}"] = values
            if "@" in key:
                metrics[_metric_name(evaluator, f"{name}_{key}")] = {"mean": f"{name}_{key}"}
    gold = [sorted(evaluator.relevant_docs[q]) for q in evaluator.queries_ids]
    table.attrs = {
        KIND: "retrieval",
        METRICS: metrics,
        EXAMPLES: _fingerprint(zip(table.example_id, map(str, gold), strict=True), evaluator.corpus),
    }
    return table


def _dense(embeddings: Any) -> torch.Tensor:
    """A tensor of embeddings; a sparse encoder's sparse ones densified (a chunk of rows at a time)."""
    tensor = torch.as_tensor(embeddings)
    return tensor.to_dense() if tensor.is_sparse else tensor


def _retrieval_columns(
    evaluator: Any, scores: Any, tie_key: Any, relevant: list[tuple[list[int], int]]
) -> dict[str, list[float]]:
    """rank, score and every @k metric per query, from the full query x corpus score matrix."""

    ks = {
        "accuracy": evaluator.accuracy_at_k,
        "precision": evaluator.precision_recall_at_k,
        "recall": evaluator.precision_recall_at_k,
        "mrr": evaluator.mrr_at_k,
        "ndcg": evaluator.ndcg_at_k,
        "map": evaluator.map_at_k,
    }
    columns: dict[str, list[float]] = {"rank": [], "score": []}
    columns.update({f"{metric}@{k}": [] for metric, values in ks.items() for k in values})
    for row, (docs, n_relevant) in zip(scores, relevant, strict=True):
        unsorted = [
            int((row > row[d]).sum() + ((row == row[d]) & (tie_key < tie_key[d])).sum()) for d in docs
        ]
        positions = np.sort(np.array(unsorted, dtype=int))
        best = int(positions[0]) if docs else len(row)
        columns["rank"].append(float(best + 1))
        columns["score"].append(float(row[docs[int(np.argmin(unsorted))]]) if docs else float("nan"))
        for k in ks["accuracy"]:
            columns[f"accuracy@{k}"].append(float(best < k))
        for k in ks["precision"]:
            columns[f"precision@{k}"].append(float((positions < k).sum()) / k)
            columns[f"recall@{k}"].append(float((positions < k).sum()) / n_relevant)
        for k in ks["mrr"]:
            columns[f"mrr@{k}"].append(1.0 / (best + 1) if best < k else 0.0)
        for k in ks["ndcg"]:
            dcg = sum(1.0 / np.log2(p + 2) for p in positions if p < k)
            ideal = sum(1.0 / np.log2(i + 2) for i in range(min(n_relevant, k)))
            columns[f"ndcg@{k}"].append(dcg / ideal)
        for k in ks["map"]:
            hits = [p for p in positions if p < k]
            precision_sum = sum((j + 1) / (p + 1) for j, p in enumerate(hits))
            columns[f"map@{k}"].append(precision_sum / min(k, n_relevant))
    return columns


def label_table(evaluator: Any, model: Any) -> pd.DataFrame:
    """Texts routed to the nearest label name: gold and predicted label, rank and score of the gold one."""

    scores = evaluator.score_matrix(
        model,
        embed=lambda texts, *args: _embed(evaluator, model, texts, *args),
        score=lambda pairs: _recorded(evaluator, "score_pairs", model, pairs),
    )
    gold = [evaluator.classes.index(label) for label in evaluator.labels]
    true_scores = scores[range(len(gold)), gold]
    ranks = (scores > true_scores[:, None]).sum(axis=1) + 1
    predicted = scores.argmax(axis=1)
    table = pd.DataFrame(
        {
            "example_id": example_ids(evaluator.texts),
            "text": list(map(str, evaluator.texts)),
            "gold_label": evaluator.labels,
            "predicted_label": [evaluator.classes[i] for i in predicted],
            "rank": ranks.astype(float),
            "score": true_scores,
            "predicted_score": scores.max(axis=1),
            "accuracy@1": (ranks == 1).astype(float),
            "mrr@10": [1.0 / r if r <= 10 else 0.0 for r in ranks],
        }
    )
    metrics = {
        _metric_name(evaluator, "accuracy@1"): {"mean": "accuracy@1"},
        _metric_name(evaluator, "mrr@10"): {"mean": "mrr@10"},
        _metric_name(evaluator, "macro_f1"): {"macro_f1": ["gold_label", "predicted_label"]},
    }
    table.attrs = {
        KIND: "label",
        METRICS: metrics,
        EXAMPLES: _fingerprint(zip(table.example_id, evaluator.labels, strict=True), evaluator.classes),
    }
    return table
