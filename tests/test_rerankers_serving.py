"""A reranker as an MLflow model and a command: pyfunc predict, `stembed score`, `stembed rerank`,
`stembed serve` on loopback and `stembed eval` of one real tiny reranker run (trained once here)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STEMBED, TINY_CROSS, all_runs, job_runs, run_stembed, stembed_env, store_uri
from team_server import free_port

RERANKER = TINY_CROSS
PAIRS = pd.DataFrame(
    {
        "query": ["How do I reset my password?"] * 3 + ["Where is my order?"] * 2,
        "document": [
            "Open Settings, then Security, then Reset password.",
            "The printer on floor 3 jams.",
            "Your order ships in two days.",
            "Your order ships in two days.",
            "Reset your password from the login page.",
        ],
        "source": ["a", "b", "c", "d", "e"],  # any other column travels along
    }
)


@pytest.fixture(scope="module")
def reranker_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(working directory, run id) of one tiny reranker training run with its model logged."""
    cwd = tmp_path_factory.mktemp("reranker_run")
    result = run_stembed(["train", *RERANKER], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = job_runs(store_uri(cwd))
    PAIRS.to_csv(cwd / "pairs.csv", index=False)
    return cwd, run.info.run_id


@pytest.fixture(scope="module")
def scores(reranker_run: tuple[Path, str]) -> pd.DataFrame:
    """`stembed score RUN_ID` of PAIRS, read back."""
    cwd, run_id = reranker_run
    result = run_stembed(["score", run_id, "-i", "pairs.csv", "-o", "scores.parquet"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5 pairs scored" in result.stdout
    return pd.read_parquet(cwd / "scores.parquet")


@pytest.mark.e2e
def test_pyfunc_predicts_one_finite_score_per_pair_as_score_does(
    reranker_run: tuple[Path, str], scores: pd.DataFrame
) -> None:
    import mlflow

    cwd, run_id = reranker_run
    mlflow.set_tracking_uri(store_uri(cwd))
    predicted = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(PAIRS[["query", "document"]])
    predicted = np.asarray(predicted, dtype=np.float64)
    assert predicted.shape == (5,) and np.isfinite(predicted).all()
    assert list(scores.columns) == ["query", "document", "source", "score"]
    assert scores[["query", "document", "source"]].equals(PAIRS)
    np.testing.assert_allclose(scores["score"].to_numpy(), predicted, rtol=1e-5, atol=1e-6)


@pytest.mark.e2e
def test_rerank_ranks_each_querys_candidates_by_score_and_keeps_the_top_k(
    reranker_run: tuple[Path, str], scores: pd.DataFrame
) -> None:
    cwd, run_id = reranker_run
    command = ["rerank", f"runs:/{run_id}/model", "-i", "pairs.csv", "-c", "query,document", "--top-k", "2"]
    result = run_stembed([*command, "-o", "ranked.csv"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 queries reranked, 4 rows written" in result.stdout  # 3 candidates -> 2, 2 -> 2
    ranked = pd.read_csv(cwd / "ranked.csv")
    assert list(ranked.columns) == ["query", "document", "source", "score", "rank"]
    assert list(ranked["query"].unique()) == list(PAIRS["query"].unique())  # queries in input order
    for query, group in ranked.groupby("query", sort=False):
        assert list(group["rank"]) == [1, 2]
        assert group["score"].is_monotonic_decreasing
        candidates = scores[scores["query"] == query].set_index("source")["score"]
        np.testing.assert_allclose(group["score"], candidates[group["source"]], rtol=1e-5, atol=1e-6)
        dropped = candidates.drop(group["source"])
        assert dropped.empty or dropped.max() <= group["score"].min() + 1e-6  # the best two were kept
    assert not list(cwd.glob(".*.partial-*"))  # written through a temporary file, renamed at the end


@pytest.mark.e2e
def test_serve_answers_invocations_with_scores(reranker_run: tuple[Path, str], scores: pd.DataFrame) -> None:
    """`stembed serve RUN_ID` of a reranker: a dataframe_split of pairs in, one score per pair out."""
    cwd, run_id = reranker_run
    port = free_port()
    server = subprocess.Popen(
        [STEMBED, "serve", run_id, "--port", str(port)],
        cwd=cwd,
        env=stembed_env(PATH="/usr/bin:/bin"),  # not activated: uvicorn is not on PATH
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server and its uvicorn workers, stopped together below
    )
    try:
        frame = PAIRS[["query", "document"]]
        body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
        answer = ask(server, f"http://127.0.0.1:{port}/invocations", body)
        served = np.asarray(answer["predictions"], dtype=np.float64)
        assert served.shape == (5,) and np.isfinite(served).all()
        np.testing.assert_allclose(served, scores["score"], rtol=1e-5, atol=1e-6)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def ask(server: subprocess.Popen[str], url: str, body: dict) -> dict:
    """POST body to the server once it listens (up to 120 s); its JSON answer."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    for _ in range(240):
        if server.poll() is not None:
            pytest.fail(f"the server exited {server.returncode}: {server.stdout.read()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.5)
    pytest.fail("no answer in 120 s")


@pytest.mark.e2e
def test_eval_of_the_logged_reranker_prints_its_metrics(reranker_run: tuple[Path, str]) -> None:
    cwd, run_id = reranker_run
    result = run_stembed(
        ["eval", f"runs:/{run_id}/model", "+experiment=demo", "evaluator=ce_correlation"], cwd
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = dict(line.split() for line in result.stdout.splitlines() if line.startswith("val_"))
    assert set(printed) == {"val_pearson", "val_spearman"}
    assert all(math.isfinite(float(value)) for value in printed.values())
    (evaluation,) = [
        r for r in all_runs(store_uri(cwd)) if r.data.tags.get("stembed.command") == "stembed eval"
    ]
    assert evaluation.data.tags["stembed.model_run_id"] == run_id
    assert evaluation.data.metrics["val_spearman"] == pytest.approx(float(printed["val_spearman"]), abs=1e-4)


@pytest.mark.e2e
def test_wrong_kind_of_model_names_the_command_that_fits(reranker_run: tuple[Path, str]) -> None:
    cwd, run_id = reranker_run
    encoded = run_stembed(["encode", run_id, "-i", "pairs.csv", "-c", "query", "-o", "e.npy"], cwd)
    assert encoded.returncode == 2, encoded.stderr[-3000:]
    assert "cross-encoder" in encoded.stderr and "stembed score" in encoded.stderr
    assert "Traceback" not in encoded.stderr and not (cwd / "e.npy").exists()

    bi_encoder = cwd / "bi-encoder"
    from stembed.components.model import tiny_static_model

    tiny_static_model(["password", "order"]).save(str(bi_encoder))
    wrong = run_stembed(["score", str(bi_encoder), "-i", "pairs.csv", "-o", "s.parquet"], cwd)
    assert wrong.returncode == 2, wrong.stderr[-3000:]
    assert "bi-encoder" in wrong.stderr and "stembed encode" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not (cwd / "s.parquet").exists()


def test_bad_pair_input_fails_before_the_model_loads(tmp_path: Path) -> None:
    from stembed.errors import StembedError
    from stembed.inference.score import rerank_file, score_file

    PAIRS.to_csv(tmp_path / "pairs.csv", index=False)
    PAIRS.assign(score=1.0).to_csv(tmp_path / "labelled.csv", index=False)
    out = tmp_path / "x.csv"
    no_model = "no/such-model"  # never loaded: each check comes first
    with pytest.raises(StembedError, match=r"question not in .*\['query', 'document', 'source'\]"):
        score_file(no_model, None, tmp_path / "pairs.csv", "question,document", out)
    with pytest.raises(StembedError, match="--columns query: give the query column and the document"):
        score_file(no_model, None, tmp_path / "pairs.csv", "query", out)
    with pytest.raises(StembedError, match="already has a column named score"):
        score_file(no_model, None, tmp_path / "labelled.csv", "query,document", out)
    with pytest.raises(StembedError, match=r"--output .*x\.npy: must end in \.parquet, \.csv"):
        score_file(no_model, None, tmp_path / "pairs.csv", "query,document", tmp_path / "x.npy")
    with pytest.raises(StembedError, match="--top-k 0"):
        rerank_file(no_model, None, tmp_path / "pairs.csv", "query,document", out, top_k=0)
    assert not out.exists()


def test_rank_orders_each_query_and_breaks_ties_in_input_order() -> None:
    from stembed.inference.score import rank

    frame = pd.DataFrame(
        {"q": ["b", "a", "b", "a", "b"], "d": list("vwxyz"), "score": [0.1, 0.5, 0.9, 0.5, 0.3]}
    )
    ranked = rank(frame, "q")
    assert ranked["d"].tolist() == ["x", "z", "v", "w", "y"] and ranked["rank"].tolist() == [1, 2, 3, 1, 2]
    assert rank(frame, "q", top_k=1)["d"].tolist() == ["x", "w"]
