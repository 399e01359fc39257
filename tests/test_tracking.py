"""MLflow naming rules and where the store is."""

from __future__ import annotations

from pathlib import Path

import pytest

from stembed.tracking.redaction import mask_overrides
from stembed.tracking.run import flatten, metric_name
from stembed.tracking.store import resolve_tracking_uri


def test_metric_names_are_made_mlflow_safe() -> None:
    assert metric_name("val_cosine_ndcg@10") == "val_cosine_ndcg_at_10"
    assert metric_name("eval_quora-val_spearman_cosine") == "eval_quora-val_spearman_cosine"
    assert metric_name("a(b)") == "a_b_"


def test_flatten_gives_dotted_string_params() -> None:
    flat = flatten({"trainer": {"lr": 1e-5, "dims": [1, 2]}, "empty": {}, "none": None})
    assert flat == {"trainer.lr": "1e-05", "trainer.dims": "[1, 2]", "empty": "{}", "none": "None"}
    long = flatten({"x": "y" * 10000})["x"]
    assert len(long) <= 6000 and long.endswith("see config/ artifact]")


def test_tracking_uri_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:///x.db", tmp_path) == "sqlite:///x.db"


def test_credentials_never_reach_params() -> None:
    flat = flatten(
        {
            "tracking": {"uri": "http://alice:s3cret@mlflow.example:5000", "api_key": "abc", "token": None},
            "hub_token": "hf_xyz",
            "learning_rate": 0.1,
            "tokenizer_name": "bert",
        }
    )
    assert flat["tracking.uri"] == "http://alice:***@mlflow.example:5000"
    assert flat["tracking.api_key"] == "***" and flat["hub_token"] == "***"
    assert flat["tracking.token"] == "None" and flat["learning_rate"] == "0.1"
    assert flat["tokenizer_name"] == "bert"


def test_credentials_in_overrides_are_masked() -> None:
    overrides = ["tracking.uri=http://bob:pw@host:5000", "+hub_token=hf_abc", "loss=mnrl", "--cfg"]
    assert mask_overrides(overrides) == [
        "tracking.uri=http://bob:***@host:5000",
        "+hub_token=***",
        "loss=mnrl",
        "--cfg",
    ]
