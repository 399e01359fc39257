"""Model kinds through the real CLI: a reranker (CrossEncoder) and a sparse encoder (SPLADE) train,
evaluate, log and compare like a bi-encoder; a loss or evaluator of the wrong kind stops before a run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import all_runs, job_runs, run_stembed, store_uri

from stembed.components.kinds import CROSS_ENCODER, KINDS, check_fits, kind_of_class
from stembed.errors import StembedError

CROSS = ["+experiment=demo", "model=tiny_cross", "evaluator=ce_correlation", "trainer=smoke"]
CROSS += ["trainer.max_steps=20", "trainer.learning_rate=0.001", "trainer.logging_steps=1"]


def test_each_kind_resolves_its_library_classes() -> None:
    """The registry names real classes, and a model class names its kind."""
    for kind in KINDS.values():
        for attribute in ("model_class", "trainer_class", "arguments_class"):
            assert kind.resolve(attribute).__name__ == getattr(kind, attribute).rsplit(".", 1)[-1]
        assert kind_of_class(kind.model_class) is kind
    assert kind_of_class("sentence_transformers.cross_encoder.CrossEncoder") is CROSS_ENCODER
    assert kind_of_class("stembed.components.model.tiny_cross_encoder") is None  # a builder
    check_fits(CROSS_ENCODER, "loss", "mypackage.losses.MyLoss")  # a target of no kind passes
    with pytest.raises(StembedError, match="loss=ce_bce"):
        check_fits(CROSS_ENCODER, "loss", "sentence_transformers.sentence_transformer.losses.CoSENTLoss")


def test_reranked_routing_keeps_the_retrievers_order_below_its_top_k() -> None:
    """Label names outside the retriever's top k rank below the reranked ones, in the retriever's order."""
    import numpy as np

    from stembed.components.label_routing import LabelRetrievalEvaluator
    from stembed.components.model import tiny_cross_encoder

    names = {"a": "a", "b": "b", "c": "c"}
    evaluator = LabelRetrievalEvaluator(["reset my password", "cancel order"], ["a", "c"], names, top_k=1)
    evaluator.retriever = "a bi-encoder"  # stands in: the order below is what it would have ranked
    evaluator._order = np.array([[1, 0, 2], [2, 1, 0]])  # text 0: b, a, c; text 1: c, b, a
    scores = evaluator.score_matrix(tiny_cross_encoder(["reset", "password", "cancel", "order"]))
    assert scores.argmax(axis=1).tolist() == [1, 2]  # top 1 of the retriever: the only candidate
    assert [np.argsort(-row).tolist() for row in scores] == [[1, 0, 2], [2, 1, 0]]
    metrics = evaluator(tiny_cross_encoder(["reset"]))
    assert metrics["accuracy@1"] == 0.5 and metrics["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)


@pytest.fixture(scope="module")
def reranker_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """A sweep over two reranker losses: a parent and two FINISHED children, models logged."""
    cwd = tmp_path_factory.mktemp("rerankers")
    result = run_stembed(["train", "-m", *CROSS, "loss=ce_bce,ce_mse"], cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    runs = {r.data.params["loss._target_"].rsplit(".", 1)[-1]: r for r in job_runs(store_uri(cwd))}
    return cwd, runs


@pytest.mark.e2e
def test_reranker_sweep_trains_logs_and_cards(reranker_sweep: tuple[Path, dict]) -> None:
    import mlflow
    from mlflow.models import get_model_info
    from mlflow.tracking import MlflowClient

    cwd, runs = reranker_sweep
    assert sorted(runs) == ["BinaryCrossEntropyLoss", "MSELoss"]
    parents = [r for r in all_runs(store_uri(cwd)) if r.data.tags.get("stembed.sweep") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    client = MlflowClient(store_uri(cwd))
    mlflow.set_tracking_uri(store_uri(cwd))  # get_model_info reads the current store
    for run in runs.values():
        metrics = run.data.metrics
        assert run.info.status == "FINISHED"
        assert math.isfinite(metrics["baseline_val_spearman"]) and math.isfinite(
            metrics["final_val_spearman"]
        )
        assert run.data.tags["stembed.batch_sampler"].startswith("batch_sampler")
        flavors = get_model_info(f"runs:/{run.info.run_id}/model").flavors
        assert "python_function" in flavors and "sentence_transformers" not in flavors
        eval_files = sorted(a.path for a in client.list_artifacts(run.info.run_id, "eval"))
        assert eval_files == ["eval/baseline_val.parquet", "eval/final_val.parquet"]
        card = Path(client.download_artifacts(run.info.run_id, "README.md", str(cwd))).read_text("utf-8")
        assert "Cross Encoder" in card and "## Reproduce this run (stembed)" in card
        assert "model=tiny_cross" in card


@pytest.mark.e2e
def test_reranker_pyfunc_predicts_a_score_per_pair(reranker_sweep: tuple[Path, dict]) -> None:
    import mlflow
    import pandas as pd

    cwd, runs = reranker_sweep
    mlflow.set_tracking_uri(store_uri(cwd))
    model = mlflow.pyfunc.load_model(f"runs:/{runs['MSELoss'].info.run_id}/model")
    pairs = pd.DataFrame({"query": ["reset my password", "cancel order"], "document": ["password", "a b"]})
    scores = list(model.predict(pairs))
    assert len(scores) == 2 and all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert model.metadata.get_input_schema().input_names() == ["query", "document"]


@pytest.mark.e2e
def test_compare_significance_and_diff_of_reranker_runs(reranker_sweep: tuple[Path, dict]) -> None:
    cwd, runs = reranker_sweep
    ids = [runs["BinaryCrossEntropyLoss"].info.run_id, runs["MSELoss"].info.run_id]
    result = run_stembed(["compare", *ids, "--significance", "--format", "json"], cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)
    assert rows[0]["metric"] == "val_spearman" and rows[0]["examples"] == 200
    assert rows[0]["95% interval"].startswith("[")
    diff = run_stembed(["diff", ids[0]], cwd)
    assert diff.returncode == 0, diff.stderr[-2000:]
    assert any(line.strip().startswith("val_spearman:") for line in diff.stdout.splitlines())
    listed = run_stembed(["runs", "-e", "demo"], cwd)
    assert listed.returncode == 0 and ids[0][:8] in listed.stdout


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "wanted", "fix"),
    [
        (["model=tiny_cross", "loss=cosine"], "a bi-encoder loss on a cross-encoder model", "loss=ce_bce"),
        (["model=tiny", "loss=ce_bce"], "a cross-encoder loss on a bi-encoder model", "loss=cosine"),
        (
            ["model=tiny_cross", "loss=ce_bce", "evaluator=similarity"],
            "a bi-encoder evaluator on a cross-encoder model",
            "evaluator=ce_correlation",
        ),
    ],
)
def test_a_loss_or_evaluator_of_the_wrong_kind_stops_before_a_run(
    tmp_path: Path, args: list[str], wanted: str, fix: str
) -> None:
    result = run_stembed(["train", "+experiment=demo", "trainer=smoke", *args], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert wanted in result.stderr and fix in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists() or not all_runs(store_uri(tmp_path))


@pytest.mark.e2e
def test_reranker_routes_labels_by_reranking_the_retrievers_top_k(tmp_path: Path) -> None:
    """banking77_rerank on fixtures: mined n-tuples, reranked routing of the retriever's top 10."""
    from stembed.data.fixtures import write_fixtures

    write_fixtures(tmp_path / "data")
    args = ["+experiment=banking77_rerank", "datasets=local", "model=tiny_cross", "trainer=smoke"]
    result = run_stembed(["train", *args], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = job_runs(store_uri(tmp_path))
    metrics, params = run.data.metrics, run.data.params
    assert {"final_banking77-test_accuracy_at_1", "final_banking77-test_macro_f1"} <= set(metrics)
    assert params["evaluator.call.top_k"] == "10" and params["loss._target_"].endswith(
        "cross_encoder.losses.MultipleNegativesRankingLoss"
    )
    assert metrics["mining_negatives_per_anchor"] > 0


@pytest.mark.e2e
def test_sparse_encoder_trains_with_splade_and_logs_sparsity(tmp_path: Path) -> None:
    import mlflow

    args = ["+experiment=demo", "model=tiny_sparse", "loss=splade_mnrl", "evaluator=sparse_retrieval"]
    result = run_stembed(["train", *args, "trainer=smoke", "trainer.learning_rate=0.01"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = job_runs(store_uri(tmp_path))
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert min(metrics["final_val_query_active_dims"], metrics["final_val_corpus_active_dims"]) > 0
    assert "final_val_dot_ndcg_at_10" in metrics
    mlflow.set_tracking_uri(store_uri(tmp_path))
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    (vector,) = model.predict({"text": ["reset my password"]})
    assert json.loads(vector) and all(isinstance(w, float) for w in json.loads(vector).values())
