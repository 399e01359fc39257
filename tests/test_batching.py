"""Length-grouped batches, bf16=auto and the token counter: the speed-ups of `trainer/` (issue 6)."""

from __future__ import annotations

import random

import pytest


def _dataset(n: int = 640, duplicates: bool = False):  # type: ignore[no-untyped-def]
    from datasets import Dataset

    rng = random.Random(0)
    words = [f"w{i}" for i in range(50)]
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 120))) for _ in range(n)]
    names = ["label a", "label b"] if duplicates else [f"name {i}" for i in range(n)]
    return Dataset.from_dict(
        {"sentence1": texts, "sentence2": [names[i % len(names)] for i in range(n)], "score": [1.0] * n}
    )


def _padding_share(dataset, batches) -> float:  # type: ignore[no-untyped-def]
    """Real / padded characters of sentence1 over the batches (what padding costs)."""
    lengths = [len(t) for t in dataset["sentence1"]]
    real = sum(lengths[i] for b in batches for i in b)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return real / padded


def test_every_row_once_per_epoch_in_length_groups_and_a_new_order_each_epoch() -> None:
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from torch.utils.data import RandomSampler

    from stembed.speed.batching import LengthGroupedBatchSampler

    dataset = _dataset()
    sampler = LengthGroupedBatchSampler(dataset, batch_size=32, drop_last=False, seed=42)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(len(dataset)))
    assert len(epoch0) == len(sampler) == 20 and all(len(b) == 32 for b in epoch0)
    assert epoch0 == list(sampler)  # deterministic: resuming mid-epoch skips the same batches
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0 and sorted(map(sorted, epoch1)) != sorted(map(sorted, epoch0))

    plain = list(DefaultBatchSampler(RandomSampler(dataset), batch_size=32, drop_last=False))
    assert _padding_share(dataset, plain) < 0.7 < 0.95 < _padding_share(dataset, epoch0)


def test_drop_last_and_no_duplicates() -> None:
    from stembed.speed.batching import LengthGroupedBatchSampler

    dataset = _dataset(100)
    dropped = list(LengthGroupedBatchSampler(dataset, batch_size=32, drop_last=True))
    assert len(dropped) == 3 and all(len(b) == 32 for b in dropped)

    # Two distinct names: an in-batch-negative loss may see each at most once per batch.
    dataset = _dataset(40, duplicates=True)
    batches = list(LengthGroupedBatchSampler(dataset, batch_size=4, drop_last=False, no_duplicates=True))
    for batch in batches:
        texts = [t for i in batch for t in (dataset[i]["sentence1"], dataset[i]["sentence2"])]
        assert len(texts) == len(set(texts))
    assert sorted(i for b in batches for i in b) == list(range(40))


def test_token_lengths_follow_the_tokenizer_and_its_truncation() -> None:
    from stembed.components.model import tiny_static_model
    from stembed.data.demo import vocabulary
    from stembed.speed.batching import TokenLengths

    model = tiny_static_model(vocabulary())
    lengths = TokenLengths(model.tokenizer, 3)(["hello", "a b c d e f"])
    assert lengths[0] >= 1 and lengths[1] == 3


@pytest.mark.parametrize(
    ("speed_bf16", "values", "native", "expected"),
    [
        ("auto", {}, False, {"bf16": False}),
        ("auto", {}, True, {"bf16": True, "use_cpu": True}),
        ("auto", {"fp16": True}, True, {"fp16": True}),
        (True, {}, False, {"bf16": True}),
        (False, {}, True, {"bf16": False}),  # speed.bf16 is the one place (trainer.bf16 is moved there)
    ],
)
def test_bf16_auto_only_where_the_cpu_has_it(monkeypatch, speed_bf16, values, native, expected) -> None:  # type: ignore[no-untyped-def]
    import torch

    from stembed.speed import hardware
    from stembed.speed.plan import resolve_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    assert resolve_bf16(speed_bf16, values) == expected


def test_native_bf16_read_from_the_cpu_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stembed.speed.hardware import cpu_has_native_bf16

    with_bf16, without = tmp_path / "bf16", tmp_path / "avx2"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_has_native_bf16(with_bf16) and not cpu_has_native_bf16(without)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_token_counter_counts_training_batches_only() -> None:
    import torch

    from stembed.speed.throughput import TokenCounter, throughput_metrics

    counter = TokenCounter()
    module = torch.nn.Linear(1, 1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    counter(module, ({"attention_mask": mask},))
    module.eval()
    counter(module, ({"attention_mask": mask},))  # evaluation: not counted
    assert (counter.real, counter.padded, counter.attention, counter.real_attention) == (5, 8, 32, 13)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4))
    metrics = throughput_metrics(counter, model, seconds=2.0)  # type: ignore[arg-type]
    assert metrics["train_padding_efficiency"] == 5 / 8 and metrics["train_tokens_per_second"] == 2.5
    assert metrics["train_useful_tflops"] == pytest.approx(6 * 20 * 5 / 2 / 1e12)


@pytest.mark.slow
def test_only_models_that_pad_get_length_groups() -> None:
    from stembed.components.model import load_model, tiny_static_model
    from stembed.data.demo import vocabulary
    from stembed.speed.batching import pads_batches

    assert not pads_batches(tiny_static_model(vocabulary()))
    cfg = {"name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "max_seq_length": 256}
    from omegaconf import OmegaConf

    assert pads_batches(load_model(OmegaConf.create(cfg)).model)
