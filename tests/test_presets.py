"""The reference presets: their hyperparameters, their builders, and every preset run on fixtures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import job_runs, run_stembed, store_uri
from hydra import compose, initialize_config_dir

from stembed.components.kinds import CROSS_ENCODER
from stembed.components.label_routing import LabelRetrievalEvaluator
from stembed.components.model import configured_kind, tiny_static_model
from stembed.config import conf_dir
from stembed.data.demo import vocabulary
from stembed.data.fixtures import write_fixtures
from stembed.data.pairs import label_name_pairs, same_label_pairs
from stembed.data.templates import templated_pairs
from stembed.errors import StembedError

PRESETS = sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))

# preset -> (loss class, batch size, epochs, learning rate, warmup, batch sampler)
REFERENCE = {
    "quora": ("CosineSimilarityLoss", 16, 2, 5e-5, 0, "batch_sampler"),
    "customer_support": ("CosineSimilarityLoss", 16, 15, 5e-5, 0.0, "batch_sampler"),
    "customer_support_mnrl": ("MultipleNegativesRankingLoss", 16, 3, 5e-5, 0.0, "no_duplicates"),
    "it_tickets": ("CosineSimilarityLoss", 32, 10, 5e-5, 0.0, "batch_sampler"),
    "ifixit": ("MultipleNegativesRankingLoss", 16, 5, 5e-5, 0.0, "no_duplicates"),
    "recsys": ("MultipleNegativesRankingLoss", 256, 100, 5e-5, 0.0, "batch_sampler"),
    "stsb": ("CosineSimilarityLoss", 16, 4, 5e-5, 0.1, "batch_sampler"),
}


def compose_preset(name: str, *overrides: str):  # type: ignore[no-untyped-def]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=[f"+experiment={name}", *overrides])


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_presets_carry_the_reference_hyperparameters(name: str) -> None:
    cfg = compose_preset(name)
    loss, batch, epochs, lr, warmup, sampler = REFERENCE[name]
    assert cfg.loss._target_.rsplit(".", 1)[1] == loss
    assert cfg.trainer.per_device_train_batch_size == batch
    assert cfg.trainer.num_train_epochs == epochs
    assert cfg.trainer.learning_rate == lr
    assert cfg.trainer.warmup_steps == warmup
    # speed.batch_sampler=auto (the default) is the plain sampler for losses that read labels.
    in_batch = loss in ("MultipleNegativesRankingLoss", "CachedMultipleNegativesRankingLoss")
    auto = "no_duplicates" if in_batch else "batch_sampler"
    assert cfg.speed.batch_sampler in (sampler, "auto" if auto == sampler else sampler)
    assert cfg.task_name == name and cfg.model.name_or_path == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize("name", PRESETS)
def test_presets_set_bf16_and_the_sampler_in_the_speed_group_only(name: str) -> None:
    """trainer.bf16 / trainer.batch_sampler are deprecated spellings: no preset uses them."""
    cfg = compose_preset(name)
    assert "bf16" not in cfg.trainer and "batch_sampler" not in cfg.trainer
    assert cfg.speed.bf16 == "auto"  # no preset forces a precision


def test_presets_point_at_public_sources() -> None:
    assert compose_preset("quora").data.source == "sentence-transformers/quora-duplicates"
    assert compose_preset("quora").data.subset == "pair-class"
    assert compose_preset("stsb").data.source == "sentence-transformers/stsb"
    bitext = "bitext/Bitext-customer-support-llm-chatbot-training-dataset"
    assert compose_preset("customer_support").data.source == bitext
    assert compose_preset("customer_support", "data.source=x.csv").data.source == "x.csv"


@pytest.mark.e2e
def test_every_preset_trains_on_its_fixture(tmp_path: Path) -> None:
    """`-m +experiment=...`: one real (smoke) training run per preset, each with the tiny model of its
    kind (model=tiny, or model=tiny_cross for the reranker presets), each logged FINISHED."""
    write_fixtures(tmp_path / "data")
    rerankers = [name for name in PRESETS if configured_kind(compose_preset(name).model) is CROSS_ENCODER]
    common = ["datasets=local", "trainer=smoke", "tracking.log_model=false"]
    others = f"+experiment=glob(*,exclude=[{','.join(rerankers)}])"
    for sweep in ([others, "model=tiny"], [f"+experiment={','.join(rerankers)}", "model=tiny_cross"]):
        result = run_stembed(["train", "-m", *sweep, *common], tmp_path, timeout=900)
        assert result.returncode == 0, result.stderr[-4000:]
    runs = job_runs(store_uri(tmp_path))
    assert sorted(r.data.tags["stembed.task"] for r in runs) == PRESETS
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(rerankers) == ["banking77_rerank", "it_tickets_rerank", "stsb_cross"]
    by_task = {r.data.tags["stembed.task"]: r for r in runs}
    assert "final_sts-test_spearman_cosine" in by_task["stsb"].data.metrics
    assert "final_sts-test_spearman" in by_task["stsb_cross"].data.metrics
    assert "final_it-tickets_macro_f1" in by_task["it_tickets"].data.metrics
    assert "final_it-tickets_macro_f1" in by_task["it_tickets_rerank"].data.metrics
    assert "final_ifixit-val_cosine_recall_at_10" in by_task["ifixit"].data.metrics
    assert by_task["customer_support"].data.params["data_stats.labels"] == "13"
    assert int(by_task["it_tickets"].data.params["data_stats.train_pairs"]) == 4000


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixtures(tmp_path_factory.mktemp("fixtures"))


def test_same_label_pairs(fixtures: Path) -> None:
    source = str(fixtures / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
    data = same_label_pairs(source, "instruction", "intent", n_pairs=300, seed=1)
    again = same_label_pairs(source, "instruction", "intent", n_pairs=300, seed=1)
    assert data.train.to_dict() == again.train.to_dict()
    assert len(data.train) == 300 and set(data.train["score"]) == {1.0}
    intent_of = dict(zip(data.eval["text"], data.eval["label"], strict=True))
    raw = pd.read_csv(source)
    intent = dict(zip(raw["instruction"], raw["intent"], strict=True))
    pairs = zip(data.train["sentence1"], data.train["sentence2"], strict=True)
    assert all(intent[a] == intent[b] and a != b for a, b in pairs)
    train_texts = set(data.train["sentence1"]) | set(data.train["sentence2"])
    assert not train_texts & set(intent_of), "held-out utterances must not be trained on"
    assert data.eval.column_names == ["text", "label"] and data.eval_pairs is None
    assert data.stats["labels"] == 13 and data.stats["rows_in"] == 234


def test_label_name_pairs_are_balanced(fixtures: Path) -> None:
    source = str(fixtures / "it-service-tickets" / "all_tickets_processed_improved_v3.csv")
    data = label_name_pairs(
        source, "Document", "Topic_group", n_pairs=400, label_names={"HR Support": "human resources"}
    )
    assert data.train["score"].count(1.0) == data.train["score"].count(0.0) == 200
    assert set(data.train["sentence2"]) == {"Hardware", "Access", "human resources", "Storage"}
    assert data.stats["train_positive_share"] == 0.5


def test_templated_pairs_render_lists_and_explode(fixtures: Path) -> None:
    data = templated_pairs(
        str(fixtures / "ifixit" / "guides.jsonl"), "{symptoms}", "{title}", explode="symptoms"
    )
    assert data.stats["rows_in"] == 40 and data.stats["records_after_explode"] == 120
    assert len(data.train) + len(data.eval) == 120
    recsys = templated_pairs(
        str(fixtures / "recsys" / "interactions.jsonl"),
        "User Profile: {user_id}; {history_brands}",
        "{item_id}",
    )
    assert recsys.train["anchor"][0].startswith("User Profile: u") and ", " in recsys.train["anchor"][0]
    with pytest.raises(StembedError, match=r"field\(s\) \['title'\] are not in the data"):
        templated_pairs(str(fixtures / "recsys" / "interactions.jsonl"), "{user_id}", "{title}")


def test_label_retrieval_evaluator() -> None:
    texts = ["track order", "refund", "password reset", "track order"]
    labels = ["track_order", "refund", "password_reset", "refund"]
    metrics = LabelRetrievalEvaluator(texts, labels, name="intents")(tiny_static_model(vocabulary()))
    # identical token sets embed identically, so the first three are found at rank 1; the last is wrong
    assert metrics["intents_accuracy@1"] == 0.75
    assert 0.75 < metrics["intents_mrr@10"] < 1.0
    assert metrics["intents_macro_f1"] == pytest.approx((1.0 + 2 / 3 + 2 / 3) / 3)
