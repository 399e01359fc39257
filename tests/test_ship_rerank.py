"""`stembed ship --reranker`: retrieve with a bi-encoder variant, rerank with a cross-encoder, measured on the
run's eval data beside the grid (retrieval, label routing, pair similarity), and shipped when chosen.

The pipeline's metric is checked against a ranking computed by hand; the rest runs real tiny runs (a
bi-encoder per evaluator and one reranker, all in one store) through the CLI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, TINY_CROSS, job_runs, run_stembed, store_uri

WITH_MODEL = [arg for arg in TINY if arg != "tracking.log_model=false"]
RERANKER = TINY_CROSS
LABELS = [
    "+experiment=it_tickets",
    "datasets=local",
    "model=tiny",
    "trainer=smoke",
    "trainer.learning_rate=0.5",
]
REFERENCE = "torch-fp32 / 32d / float32"
ROW = re.compile(
    r"^\| (\*\*)?(?P<label>[^|*]+?)(\*\* \(chosen\))? \| (?P<metric>[\d.-]+) \| (?P<delta>[^|]+) \|"
)


class Overlap:
    """A reranker stand-in: shared words, and a tie-breaker per candidate, so nothing ties."""

    name, model = "rerank", None

    def score(self, pairs: list[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        return np.array(
            [len(set(q.split()) & set(c.split())) + sum(map(ord, c)) % 97 / 1e4 for q, c in pairs],
            dtype=np.float32,
        )


def table_rows(stdout: str) -> dict[str, tuple[float, str]]:
    """{variant label: (metric, delta cell)} from ship's printed table."""
    found = (ROW.match(line) for line in stdout.splitlines())
    return {
        m["label"]: (float(m["metric"]), m["delta"].strip()) for m in found if m and m["label"] != "variant"
    }


def test_variant_labels_and_the_choice_between_rows_with_and_without_a_reranker() -> None:
    from stembed.inference.grid import choose
    from stembed.inference.variants import Row, Variant

    plain = Variant("onnx-int8", 384, "float32")
    reranked = Variant("onnx-int8", 384, "float32", "rerank", 10)
    assert reranked.label == "onnx-int8 / 384d / float32 + rerank@10"
    assert Variant("", 0, "", "rerank", 0).label == "rerank@all"
    rows = [
        Row(Variant("torch-fp32", 384, "float32"), 0.80, 0.0, index_mb_per_million=1536, model_mb=90),
        Row(plain, 0.795, -0.005, index_mb_per_million=1536, model_mb=23),
        Row(Variant("onnx-int8", 64, "binary"), 0.70, -0.10, index_mb_per_million=8, model_mb=23),
        Row(reranked, 0.83, 0.03, index_mb_per_million=1536, model_mb=113),
        Row(
            Variant("onnx-int8", 64, "binary", "rerank", 50), 0.82, 0.02, index_mb_per_million=8, model_mb=113
        ),
        Row(Variant("", 0, "", "rerank", 0), 0.84, 0.04, index_mb_per_million=0, model_mb=90),
    ]
    assert choose(rows, 0.01).variant == plain  # a reranker only where no row without one qualifies
    assert choose(rows, 0.2).variant.label == "onnx-int8 / 64d / binary"
    # a gain: the cheapest row that gains it (the smallest index, then model)
    assert choose(rows, 0.01, min_gain=0.01).variant.label == "rerank@all"
    assert choose(rows, 0.01, min_gain=0.035).variant.label == "rerank@all"
    assert choose(rows[:5], 0.01, min_gain=0.01).variant.label == "onnx-int8 / 64d / binary + rerank@50"
    assert choose(rows, 0.01, min_gain=0.05) is None


def test_reranked_rows_measure_the_pipelines_ranking() -> None:
    """The evaluator, handed the pipeline's view, reports what the ranking computed by hand scores:
    retrieval (the corpus: top k reranked, the rest as retrieved) and label routing (the label names)."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from stembed.components.evaluators import retrieval_inputs
    from stembed.components.label_routing import LabelRetrievalEvaluator, _macro_f1
    from stembed.components.model import tiny_static_model
    from stembed.data.demo import demo_pairs, vocabulary
    from stembed.inference.grid import evaluate_variant, per_example_table
    from stembed.inference.rerank_stage import PairScores, RankedView, pipeline_scores, ranking_task
    from stembed.inference.runtimes import TorchEncoder
    from stembed.inference.variants import VariantModel

    model = tiny_static_model(vocabulary())
    data = demo_pairs(n_train=40, n_eval=120, seed=0)
    scores = PairScores(Overlap())
    evaluator = InformationRetrievalEvaluator(
        **retrieval_inputs(data.eval, "sentence1", "sentence2", "score", 0.5), name="val"
    )
    evaluate_variant(evaluator, VariantModel(model, TorchEncoder(model)))  # as the grid ran it first
    task = ranking_task(evaluator)
    order = np.argsort(-task.retrieve(VariantModel(model, TorchEncoder(model))), axis=1, kind="stable")
    for k in (5, 20):
        view = RankedView(model, pipeline_scores(order, k, task, scores), task)
        measuring = task.evaluator_for(view)
        name, value = evaluate_variant(measuring, view)
        hits = []
        for i, query in enumerate(task.queries):
            top = order[i, :k]
            mine = Overlap().score([(query, task.candidates[j]) for j in top])
            ranking = [*top[np.argsort(-mine, kind="stable")], *order[i, k:]][:100]
            hits.append([{"corpus_id": evaluator.corpus_ids[j], "score": -p} for p, j in enumerate(ranking)])
        assert name == "val_cosine_ndcg@10"
        assert value == pytest.approx(evaluator.compute_metrics(hits)["ndcg@k"][10], abs=1e-6)
        table, spec = per_example_table(measuring, view, name)  # per query, for the paired interval
        assert table[spec["mean"]].mean() == pytest.approx(value, abs=1e-6)

    texts = list(data.eval["sentence1"])[:40]
    words = ["order", "password", "refund", "account", "laptop", "phone", "delivery"]
    labels = [next((w for w in words if w in text), "other") for text in texts]
    routing = LabelRetrievalEvaluator(texts, labels, name="r")
    task = ranking_task(routing)
    m, gold = len(task.candidates), np.array([routing.classes.index(label) for label in labels])
    every = scores([(q, c) for q in task.queries for c in task.candidates]).reshape(len(texts), m)
    order = np.argsort(-task.retrieve(VariantModel(model, TorchEncoder(model))), axis=1, kind="stable")
    for k in (2, m):
        metrics = routing(RankedView(model, pipeline_scores(order, k, task, scores), task))
        top = order[:, :k]
        best = np.take_along_axis(top, np.take_along_axis(every, top, 1).argmax(1)[:, None], 1)[:, 0]
        assert metrics["r_accuracy@1"] == pytest.approx((best == gold).mean())
        assert metrics["r_macro_f1"] == pytest.approx(_macro_f1(gold.tolist(), best.tolist(), m))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Real tiny runs in one store: a reranker, and bi-encoders evaluated by retrieval, pair similarity
    and label routing (IT-ticket fixtures), each with its model logged."""
    from stembed.data.fixtures import write_fixtures

    cwd = tmp_path_factory.mktemp("ship_rerank")
    write_fixtures(cwd / "data")
    trainings = {
        "reranker": RERANKER,
        "retrieval": [*WITH_MODEL, "trainer.max_steps=12", "evaluator=retrieval"],
        "similarity": [*WITH_MODEL, "trainer.max_steps=12"],
        "labels": LABELS,
    }
    for args in trainings.values():
        trained = run_stembed(["train", *args], cwd)
        assert trained.returncode == 0, trained.stderr[-3000:]
    by_overrides = {run.data.tags["stembed.overrides"]: run.info.run_id for run in job_runs(store_uri(cwd))}
    return cwd, {name: by_overrides[json.dumps(args)] for name, args in trainings.items()}


@pytest.mark.e2e
def test_ship_measures_retrieve_then_rerank_at_several_k(runs: tuple[Path, dict[str, str]]) -> None:
    cwd, ids = runs
    out = cwd / "ship-retrieval"
    args = ["--reranker", ids["reranker"], "--rerank-k", "5,10,50", "--min-gain", "1.0", "-o", str(out)]
    result = run_stembed(["ship", ids["retrieval"], *args], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    assert "| queries/s | p50 ms / query |" in result.stdout
    reranked = {label for label in rows if " + rerank@" in label}
    retrievers = {label.split(" + ")[0] for label in reranked}
    assert REFERENCE in retrievers and len(retrievers) <= 2 and retrievers <= set(rows)  # reference + chosen
    assert reranked == {f"{r} + rerank@{k}" for r in retrievers for k in (5, 10, 50)}
    assert len(rows) - len(reranked) >= 27  # the grid as before: runtimes x 3 dims x 4 precisions, some
    for label, (_, delta) in rows.items():  # every delta but the reference's has its paired interval
        assert (label == REFERENCE) == ("[" not in delta), (label, delta)
    assert "no variant gains --min-gain 1.0 over the reference" in result.stdout  # shipped the best

    table = pd.read_csv(out / "table.csv")
    assert {"reranker", "rerank_k", "reranker_mb"} <= set(table.columns)
    with_reranker = table[table["reranker"] == "rerank"]
    assert set(with_reranker["rerank_k"]) == {5, 10, 50} and (with_reranker["reranker_mb"] > 0).all()
    assert (with_reranker["model_mb"] > with_reranker["reranker_mb"]).all()  # bi-encoder + reranker
    (chosen,) = table[table["chosen"]].itertuples()
    assert chosen.metric == table["metric"].max()
    manifest = json.loads((out / "ship.json").read_text())
    assert manifest["min_gain"] == 1.0 and manifest["label"] in rows
    assert (manifest["reranker"] is not None) == (out / "reranker").is_dir() == (chosen.reranker == "rerank")


@pytest.mark.e2e
def test_ship_reranks_label_names_and_scores_pairs(runs: tuple[Path, dict[str, str]]) -> None:
    """Label routing: the top k label names reranked, k at or above the 4 names = all of them, no retrieval.
    Pair similarity: no candidates, so the reranker scores each pair: one row. The reranker as runs:/ and
    as its folder."""
    from mlflow.tracking import MlflowClient

    cwd, ids = runs
    labels = run_stembed(
        ["ship", ids["labels"], "--reranker", f"runs:/{ids['reranker']}/model", "--rerank-k", "2,3,10"], cwd
    )
    assert labels.returncode == 0, labels.stderr[-3000:]
    rows = table_rows(labels.stdout)
    assert {f"{REFERENCE} + rerank@2", f"{REFERENCE} + rerank@3", "rerank@all"} <= set(rows)
    assert not [label for label in rows if label.endswith("@10")]  # 10 >= 4 label names: rerank@all
    assert "[" in rows["rerank@all"][1] and "[" in rows[f"{REFERENCE} + rerank@2"][1]

    reranker_run = MlflowClient(tracking_uri=store_uri(cwd)).get_run(ids["reranker"])
    folder = Path(reranker_run.data.tags["stembed.run_dir"]) / "model"
    pairs = run_stembed(["ship", ids["similarity"], "--reranker", str(folder)], cwd)
    assert pairs.returncode == 0, pairs.stderr[-3000:]
    rows = table_rows(pairs.stdout)
    assert [label for label in rows if "rerank" in label] == ["rerank@all"]
    assert "[" in rows["rerank@all"][1] and f"{REFERENCE} + rerank" not in pairs.stdout


@pytest.mark.e2e
def test_ship_refuses_the_wrong_kind_of_model(runs: tuple[Path, dict[str, str]]) -> None:
    cwd, ids = runs
    bi_as_reranker = run_stembed(["ship", ids["retrieval"], "--reranker", ids["similarity"]], cwd)
    assert bi_as_reranker.returncode == 2, bi_as_reranker.stderr[-2000:]
    assert f"--reranker {ids['similarity']}: a bi-encoder" in bi_as_reranker.stderr
    reranker_shipped = run_stembed(["ship", ids["reranker"]], cwd)
    assert reranker_shipped.returncode == 2, reranker_shipped.stderr[-2000:]
    assert "a cross-encoder run" in reranker_shipped.stderr and f"--reranker {ids['reranker']}" in (
        reranker_shipped.stderr
    )
    no_reranker = run_stembed(["ship", ids["retrieval"], "--rerank-k", "5"], cwd)
    assert no_reranker.returncode == 2 and "--rerank-k 5: measures a reranker" in no_reranker.stderr
    bad_k = run_stembed(["ship", ids["retrieval"], "--reranker", ids["reranker"], "--rerank-k", "0,5"], cwd)
    assert bad_k.returncode == 2 and "--rerank-k 0,5" in bad_k.stderr
    assert "Traceback" not in bi_as_reranker.stderr + reranker_shipped.stderr + bad_k.stderr


@pytest.mark.e2e
def test_a_chosen_reranked_row_ships_its_reranker(
    runs: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the chosen row reranks, ship/ holds the reranker, ship.json says so and load_shipped reranks."""
    from mlflow.tracking import MlflowClient

    from stembed.inference import ship as shipping
    from stembed.inference.grid import choose

    cwd, ids = runs
    monkeypatch.chdir(cwd)  # the fixtures' data/ is relative to it

    def reranked_at_2(rows: list, max_drop: float, min_gain: float | None = None) -> object:
        assert choose(rows, max_drop, min_gain) is not None
        return next(row for row in rows if row.variant.rerank_k == 2)

    monkeypatch.setattr(shipping, "choose", reranked_at_2)
    plan = shipping.Reranking(ids["reranker"], (2,))
    result = shipping.ship(ids["labels"], 0.01, cwd / "ship-chosen", None, store_uri(cwd), rerank=plan)
    label = result.chosen.variant.label
    assert label.endswith(" + rerank@2") and (cwd / "ship-chosen" / "reranker").is_dir()
    manifest = json.loads((cwd / "ship-chosen" / "ship.json").read_text())
    assert manifest["label"] == label and manifest["variant"]["rerank_k"] == 2
    assert manifest["reranker"] == {
        "stage": "rerank",
        "model": "reranker",
        "source": ids["reranker"],
        "top_k": 2,
    }
    assert "rerank each query's top 2" in manifest["how"] and "shipped.rerank(" in manifest["load"]

    shipped = shipping.load_shipped(cwd / "ship-chosen")
    candidates = ["Hardware", "Access", "HR Support", "Storage"]
    order = shipped.rerank("my laptop screen is broken", candidates)
    assert sorted(order) == [0, 1, 2, 3] and order[2:] == [2, 3]  # the top 2 reordered, the rest kept
    scores = shipped.score_pairs([("my laptop screen is broken", c) for c in candidates[:2]])
    assert list(order[:2]) == list(np.argsort(-scores, kind="stable"))
    assert shipped.encode(["my laptop"]).shape[0] == 1  # the retrieval part encodes as before
    tags = MlflowClient(tracking_uri=store_uri(cwd)).get_run(ids["labels"]).data.tags
    assert tags["stembed.ship.variant"] == label
