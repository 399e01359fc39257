"""Sanity checks on real (tiny) runs: warnings with counts on stderr, as metrics and a tag in MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, all_runs, run_stembed, store_uri

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

PAIRS = [*TINY, "data=pairs", "data.source=pairs.csv", "data.eval_fraction=0.25"]


def _write(path: Path, rows: list[str]) -> None:
    path.write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")


def test_identical_labels_leakage_and_truncation_are_reported(tmp_path: Path) -> None:
    # The customer-support seed's mistake (every label 1.0), every row twice (so the hold-out leaks),
    # and texts longer than a 6-token max_seq_length.
    rows = [
        f"how can i change the delivery address of order {i},update shipping address {i},1.0"
        for i in range(30)
    ]
    _write(tmp_path / "pairs.csv", rows + rows)
    result = run_stembed(["train", *PAIRS, "model.max_seq_length=6"], tmp_path)
    # Issue 24.3: constant eval labels make every final metric NaN: not FINISHED, but the model is kept.
    assert result.returncode == 2, result.stderr[-3000:]
    assert "final metric(s) val_pearson_cosine, val_spearman_cosine are NaN" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("outputs/runs/*/*/model/model.safetensors"))
    for name in ("identical_labels", "leaked_eval_rows", "truncated_share"):
        assert f"stembed: warning: [{name}]" in result.stderr
    assert "all 45 training labels are 1.0" in result.stderr
    (run,) = all_runs(store_uri(tmp_path))
    metrics = run.data.metrics
    assert metrics["sanity_identical_labels"] == 45
    assert 1 <= metrics["sanity_leaked_eval_rows"] <= 15
    assert metrics["sanity_truncated_share"] == 0.5  # the long first texts, not the short second ones
    assert "[identical_labels]" in run.data.tags["stembed.warnings"]
    assert run.info.status == "FAILED"

    strict = run_stembed(["train", *PAIRS, "model.max_seq_length=6", "strict=true"], tmp_path)
    assert strict.returncode == 2 and "strict=true: the data failed 3 sanity check(s)" in strict.stderr
    assert len(all_runs(store_uri(tmp_path))) == 1  # the strict run stopped before opening one


def test_mnrl_repeated_texts_warn_unless_the_no_duplicates_sampler_is_used(tmp_path: Path) -> None:
    rows = [f"question {i % 10} about billing,answer {i} about invoices,1.0" for i in range(40)]
    _write(tmp_path / "pairs.csv", rows)
    # evaluator=none: a correlation over all-1.0 eval labels is NaN, which ends a run FAILED (issue 24.3)
    mnrl = [*PAIRS, "loss=mnrl", "evaluator=none"]
    result = run_stembed(["train", *mnrl, "speed.batch_sampler=batch_sampler"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[repeated_texts]" in result.stderr and "speed.batch_sampler=no_duplicates" in result.stderr
    result = run_stembed(["train", *mnrl], tmp_path)  # speed.batch_sampler=auto, the default
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[repeated_texts]" not in result.stderr
    by_sampler = {r.data.tags["stembed.batch_sampler"]: r for r in all_runs(store_uri(tmp_path))}
    assert (
        by_sampler["batch_sampler"].data.metrics["sanity_repeated_texts"] == 30
    )  # 30 rows repeat a question
    assert "sanity_repeated_texts" not in by_sampler["no_duplicates"].data.metrics
