"""`stembed ship --reranker`: retrieve with a bi-encoder variant, rerank with a cross-encoder, measured
on the run's eval data like every other row of ship's table.

For each retrieval variant (by default the reference and the variant chosen without a reranker, so
that the cost stays a few evaluations, not the whole grid times every k) and each k, the variant's
scores retrieve a query's top-k candidates, the reranker orders them, and the other candidates follow
in the variant's order. The run's own evaluator measures that ranking: it is handed a RankedView, a
stand-in for the bi-encoder whose query "embedding" is the pipeline's scores over the candidates and
whose candidate "embedding" selects one of them, so the evaluator's metrics and stembed's per-example
tables (the paired interval to the reference row) apply unchanged.

Candidates: the label names (label routing) or the corpus (retrieval). A k at or above the number of
candidates means the reranker scores every candidate, with no retrieval: one `rerank@all` row. Pair
evaluators (similarity, binary) have no candidates: the reranker scores each pair once, one row too.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from stembed.analysis.bootstrap import value
from stembed.analysis.compare import columns
from stembed.components.kinds import kind_of
from stembed.components.label_routing import LabelRetrievalEvaluator, label_text
from stembed.components.model import load_saved
from stembed.errors import StembedError
from stembed.inference.grid import (
    LATENCY_CALLS,
    SPEED_BATCH,
    SPEED_REPEATS,
    SPEED_TEXTS,
    Grid,
    add_intervals,
    choose,
    evaluate_variant,
    per_example_table,
    sort_rows,
)
from stembed.inference.references import load_any_model
from stembed.inference.runtimes import RERANKERS, PairScorer, RerankStage, as_texts
from stembed.inference.serve import RUN_ID
from stembed.inference.variants import BATCH_SIZE, NoCardData, Row, Variant
from stembed.tracking.record import RUN_DIR_TAG
from stembed.tracking.runs import get_run

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from sentence_transformers import SentenceTransformer

RERANK_KS = (5, 10, 20, 50)
STAGE = "rerank"  # the stage of RERANKERS ship measures


@dataclass(frozen=True)
class Reranking:
    """What `--reranker`, `--rerank-k` and `--rerank-every-variant` ask of ship."""

    reference: str  # run id, runs:/ or models:/ URI, or a local directory
    ks: tuple[int, ...] = RERANK_KS
    every_variant: bool = False  # rerank after every grid row, not only the reference and the chosen one


def load_reranker(reference: str, store: MlflowClient) -> Any:
    """The reranker (a CrossEncoder) that `--reranker` names; any other kind of model is an error.

    A run's own directory holds the saved model (the tag stembed.run_dir), so a run id or its
    runs:/<id>/model loads from there where it can; anything else goes through load_any_model."""
    run_id = reference.removeprefix("runs:/").removesuffix("/model") if _names_run(reference) else None
    run_dir = get_run(store, run_id, "--reranker").data.tags.get(RUN_DIR_TAG) if run_id else None
    saved = Path(run_dir) / "model" if run_dir else None
    if saved is not None and (saved / "config_sentence_transformers.json").is_file():
        model = load_saved(str(saved))
    else:
        model = load_any_model(f"runs:/{run_id}/model" if run_id else reference, store.tracking_uri)[0]
    kind = kind_of(model)
    if not kind.scores_pairs:
        raise StembedError(
            f"--reranker {reference}: a {kind.name} ({type(model).__name__}), not a reranker. Give a "
            "cross-encoder: a run trained with a reranker model (e.g. `stembed train +experiment=demo "
            "model=tiny_cross loss=ce_bce evaluator=ce_correlation`), its runs:/<id>/model, a registered "
            "models:/ version of one, or its folder."
        )
    return model.to("cpu")


def _names_run(reference: str) -> bool:
    """A bare run id, or runs:/<id>/model (other artifacts of a run go through load_any_model)."""
    if RUN_ID.match(reference) and not Path(reference).exists():
        return True
    run_id = reference.removeprefix("runs:/").removesuffix("/model")
    return reference.startswith("runs:/") and reference.endswith("/model") and bool(RUN_ID.match(run_id))


def measure_reranking(
    grid: Grid,
    evaluator: Any,
    model: SentenceTransformer,
    reranker: Any,
    output: Path,
    plan: Reranking,
    max_drop: float,
) -> tuple[list[Row], list[str]]:
    """Every row (the grid's and the reranked ones, best first) and notes on what was left out."""
    stage, task = RERANKERS[STAGE], ranking_task(evaluator)
    if not stage.available():
        return grid.rows, [f"{stage.name} left out: not available on this machine"]
    if task is None and _pairs_of(grid) is None:
        return grid.rows, [
            f"{stage.name} left out: {type(evaluator).__name__} has no candidates to rerank, and no "
            "per-example pair table for the reranker to score"
        ]
    scores = PairScores(stage.prepare(reranker, output))
    if task is not None:
        added = _ranked_rows(task, grid, model, scores, stage, output, plan, max_drop)
    else:
        added = [_pair_row(grid, scores, stage, output)]
    rows = [row for row, _ in added]
    add_intervals(
        rows, {**grid.examples, **{row.variant.label: found for row, found in added}}, grid.reference
    )
    rows = grid.rows + rows
    sort_rows(rows)
    return rows, []


class PairScores:
    """The reranker's scores of (query, candidate) pairs, each pair scored once across k and variants."""

    def __init__(self, scorer: PairScorer) -> None:
        self.scorer = scorer
        self.known: dict[tuple[str, str], float] = {}

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        missing = list(dict.fromkeys(pair for pair in pairs if pair not in self.known))
        if missing:
            self.known.update(
                zip(missing, self.scorer.score(missing, batch_size=BATCH_SIZE).tolist(), strict=True)
            )
        return np.array([self.known[pair] for pair in pairs], dtype=np.float32)


@dataclass
class RankingTask:
    """An evaluator's queries and candidates, as the reranker reads them (no prompts), and how the
    variant's retrieval scores every candidate of every query."""

    evaluator: Any
    queries: list[str]
    candidates: list[str]
    retrieve: Callable[[Any], np.ndarray]  # a variant's view -> (queries x candidates) scores
    one_hot: bool  # the evaluator multiplies embeddings (label routing), else calls model.similarity

    def evaluator_for(self, view: RankedView) -> Any:
        """The evaluator, scoring with the view's similarity where it was given its own functions."""
        functions = getattr(self.evaluator, "score_functions", None)
        if not functions:
            return self.evaluator
        measuring = copy.copy(self.evaluator)
        measuring.score_functions = dict.fromkeys(functions, view.similarity)
        return measuring


def ranking_task(evaluator: Any) -> RankingTask | None:
    """The ranking an evaluator measures: label names per text, or the corpus per query; else None."""
    if isinstance(evaluator, LabelRetrievalEvaluator):
        names = [label_text(label, evaluator.label_names) for label in evaluator.classes]
        return RankingTask(
            evaluator,
            as_texts(evaluator.texts),
            names,
            lambda view: _numpy(evaluator.score_matrix(view)),
            True,
        )
    if isinstance(evaluator, InformationRetrievalEvaluator):
        return RankingTask(
            evaluator,
            as_texts(evaluator.queries),
            as_texts(evaluator.corpus),
            lambda view: _retrieval_scores(evaluator, view),
            False,
        )
    return None


def _retrieval_scores(evaluator: Any, view: Any) -> np.ndarray:
    """Every query's score for every document, with the score function of the primary metric."""
    queries = evaluator.embed_inputs(
        view,
        evaluator.queries,
        encode_fn_name="query",
        prompt_name=evaluator.query_prompt_name,
        prompt=evaluator.query_prompt,
    )
    documents = evaluator.embed_inputs(
        view,
        evaluator.corpus,
        encode_fn_name="document",
        prompt_name=evaluator.corpus_prompt_name,
        prompt=evaluator.corpus_prompt,
    )
    functions = evaluator.score_functions or {view.similarity_fn_name: view.similarity}
    primary = str(evaluator.primary_metric or "")
    name = next((n for n in functions if primary.startswith(f"{n}_") or f"_{n}_" in primary), None)
    return _numpy(functions[name or next(iter(functions))](queries, documents))


def _numpy(scores: Any) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        return scores.detach().cpu().float().numpy()
    return np.asarray(scores, dtype=np.float32)


def pipeline_scores(order: np.ndarray, k: int, task: RankingTask, scores: PairScores) -> np.ndarray:
    """(queries x candidates) scores of the pipeline's ranking: the top k of `order` (each query's
    candidates, the retriever's best first) as the reranker orders them, then the rest as retrieved.
    Scores are m, m-1, ..., 1 by final position, so nothing ties."""
    top = order[:, :k]
    pairs = [(task.queries[i], task.candidates[j]) for i, row in enumerate(top) for j in row]
    reranked = scores(pairs).reshape(top.shape)
    top = np.take_along_axis(top, np.argsort(-reranked, axis=1, kind="stable"), axis=1)
    final = np.concatenate([top, order[:, k:]], axis=1)
    m = order.shape[1]
    ranked = np.empty(order.shape, dtype=np.float32)
    np.put_along_axis(
        ranked, final, np.broadcast_to(np.arange(m, 0, -1, dtype=np.float32), order.shape), axis=1
    )
    return ranked


class RankedView:
    """What an evaluator sees of a retrieve-then-rerank pipeline: the bi-encoder, except that a query's
    embedding is its row of pipeline scores and a candidate's selects its column (one-hot where the
    evaluator multiplies embeddings, else its index, read by `similarity`). Prompts and normalization
    do not apply: the ranking is computed already, and scaling a row keeps its order."""

    def __init__(self, model: SentenceTransformer, ranked: np.ndarray, task: RankingTask) -> None:
        self._model, self._ranked, self._one_hot = model, torch.from_numpy(ranked), task.one_hot
        self._rows = {text: i for i, text in reversed(list(enumerate(task.queries)))}
        self._columns = {text: j for j, text in reversed(list(enumerate(task.candidates)))}
        self.model_card_data = NoCardData()  # evaluators record metrics there; not in the real card

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The bi-encoder's class, so that kind_of sees a bi-encoder (see VariantModel)."""
        return type(self._model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode_query(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        rows = self._ranked[[self._rows[text] for text in _texts(sentences)]]
        return rows if convert_to_tensor else rows.numpy()

    def encode_document(self, sentences: Any, convert_to_tensor: bool = False, **kwargs: Any) -> Any:
        index = torch.tensor([self._columns[text] for text in _texts(sentences)], dtype=torch.long)
        if self._one_hot:
            found = torch.nn.functional.one_hot(index, self._ranked.shape[1]).float()
        else:
            found = index[:, None].float()
        return found if convert_to_tensor else found.numpy()

    def similarity(self, queries: Any, documents: Any) -> torch.Tensor:
        queries, documents = torch.as_tensor(queries), torch.as_tensor(documents)
        if self._one_hot:
            return queries @ documents.T
        return queries[:, documents[:, 0].long()]


def _texts(sentences: Any) -> list[str]:
    return as_texts([sentences] if isinstance(sentences, str) else sentences)


def _ranked_rows(
    task: RankingTask,
    grid: Grid,
    model: SentenceTransformer,
    scores: PairScores,
    stage: RerankStage,
    output: Path,
    plan: Reranking,
    max_drop: float,
) -> list[tuple[Row, Any]]:
    """A row per retrieval variant and k below the candidate count, and one rerank@all row where a k
    reaches it; each with its per-example table."""
    m = len(task.candidates)
    partial = sorted({k for k in plan.ks if k < m})
    added: list[tuple[Row, Any, Row | None, int]] = []  # (row, its per-example table, retriever, k)
    for retriever in retrieval_rows(grid, plan.every_variant, max_drop) if partial else []:
        order = np.argsort(-task.retrieve(grid.view(retriever.variant)), axis=1, kind="stable")
        for k in partial:
            variant = replace(retriever.variant, reranker=stage.name, rerank_k=k)
            added.append((*_measure(task, model, scores, variant, order, k), retriever, k))
    if any(k >= m for k in plan.ks):  # the reranker alone: every candidate, no retrieval
        every = np.broadcast_to(np.arange(m), (len(task.queries), m))
        added.append((*_measure(task, model, scores, Variant("", 0, "", stage.name, 0), every, m), None, m))
    speed, size = RerankSpeed.measure(scores, {k for *_, k in added}), stage.size_mb(output)
    for row, _, retriever, k in added:
        speed.cost(row, retriever, k, size)
    return [(row, found) for row, found, *_ in added]


def _measure(
    task: RankingTask,
    model: SentenceTransformer,
    scores: PairScores,
    variant: Variant,
    order: np.ndarray,
    k: int,
) -> tuple[Row, Any]:
    """The evaluator's metric of the pipeline (order's top k reranked) and its per-example table."""
    view = RankedView(model, pipeline_scores(order, k, task, scores), task)
    evaluator = task.evaluator_for(view)
    name, metric = evaluate_variant(evaluator, view)
    return Row(variant, metric), per_example_table(evaluator, view, name)


def retrieval_rows(grid: Grid, every_variant: bool, max_drop: float) -> list[Row]:
    """The rows whose retrieval is reranked: every grid row, or the reference and the one ship would
    choose without a reranker (what a reranker would be added to)."""
    if every_variant:
        return list(grid.rows)
    chosen = choose(grid.rows, max_drop) or grid.reference
    return [grid.reference] + ([chosen] if chosen is not grid.reference else [])


def _pairs_of(grid: Grid) -> tuple[Any, str] | None:
    """(the reference's per-example pair table, its score column) for a pair evaluator, else None."""
    found = grid.examples.get(grid.reference.variant.label)
    if not found:
        return None
    table, spec = found
    ((_, arguments),) = spec.items()
    if not {"sentence1", "sentence2"} <= set(table.columns) or not isinstance(arguments, list):
        return None
    return table, arguments[0]


def _pair_row(grid: Grid, scores: PairScores, stage: RerankStage, output: Path) -> tuple[Row, Any]:
    """The reranker alone on the evaluator's pairs: the reference's per-example table with its scores
    in place of the bi-encoder's similarities, scored by the same metric recipe."""
    table, column = _pairs_of(grid) or (None, "")
    spec = grid.examples[grid.reference.variant.label][1]
    mine = table.copy()
    mine[column] = scores(list(zip(as_texts(table["sentence1"]), as_texts(table["sentence2"]), strict=True)))
    row = Row(Variant("", 0, "", stage.name, 0), value(spec, columns(mine)))
    RerankSpeed.measure(scores, {1}).cost(row, None, 1, stage.size_mb(output))
    mine.attrs = dict(table.attrs)
    return row, (mine, spec)


@dataclass
class RerankSpeed:
    """The reranker's pairs/s at batch 64 (median of 3) and the p50 latency of one query's k pairs."""

    pairs_per_second: float
    latency_ms: dict[int, float]

    @classmethod
    def measure(cls, scores: PairScores, ks: set[int]) -> RerankSpeed:
        """Measured on pairs the reranker scored for the metric (repeated up to 256)."""
        pairs = list(scores.known) or [("", "")]
        sample = (pairs * (SPEED_TEXTS // len(pairs) + 1))[:SPEED_TEXTS]
        scorer = scores.scorer
        scorer.score(sample[:SPEED_BATCH], batch_size=SPEED_BATCH)  # warm-up
        rates = []
        for _ in range(SPEED_REPEATS):
            started = time.perf_counter()
            scorer.score(sample, batch_size=SPEED_BATCH)
            rates.append(len(sample) / (time.perf_counter() - started))
        latency = {}
        for k in sorted(ks):
            calls = []
            for start in range(LATENCY_CALLS):
                batch = (sample[start:] + sample)[:k]
                started = time.perf_counter()
                scorer.score(batch, batch_size=max(k, 1))
                calls.append((time.perf_counter() - started) * 1000)
            latency[k] = statistics.median(calls)
        return cls(statistics.median(rates), latency)

    def cost(self, row: Row, retriever: Row | None, k: int, reranker_mb: float) -> None:
        """A query's cost: encoding it (the retriever's row, none for the reranker alone), then scoring
        its k pairs; queries/s from both throughputs, p50 the sum of both p50s."""
        encode_seconds = 1 / retriever.texts_per_second if retriever and retriever.texts_per_second else 0.0
        row.texts_per_second = 1 / (encode_seconds + k / self.pairs_per_second)
        row.p50_ms = (retriever.p50_ms if retriever else 0.0) + self.latency_ms[k]
        row.reranker_mb = reranker_mb
        row.model_mb = (retriever.model_mb if retriever else 0.0) + reranker_mb
        row.index_mb_per_million = retriever.index_mb_per_million if retriever else 0.0
