"""Bad input: one paragraph naming the field, the value and the fix; exit code 2; no traceback; nothing
left RUNNING in MLflow and no model directory. The table below is docs/errors.md's table of bad inputs.

The cases run `stembed train` in-process (the same `run_hydra` the command calls) so thirty of them take
seconds; tests/test_train.py runs some as real processes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import all_runs, store_uri

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

BASE = ["+experiment=demo", "model=tiny", "trainer=smoke"]
PAIRS = [*BASE, "data=pairs"]
MNRL_CATEGORY = [*PAIRS, "loss=mnrl", "data.source=category.csv", "data.columns.sentence1=anchor"]
MNRL_CATEGORY += ["data.columns.sentence2=positive", "~data.columns.score", "+data.columns.category=category"]

# id: (arguments, texts the message must contain)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "unknown_experiment": (["+experiment=nope"], ["+experiment=nope", "Options:", "demo"]),
    "typo_group_option": ([*BASE, "loss=cosin"], ["loss=cosin", "Did you mean 'cosine'?"]),
    "unknown_key": (
        [*BASE, "trainer.learnig_rate=0.1"],
        ["trainer.learnig_rate=0.1", "Did you mean 'learning_rate'?", "+trainer.learnig_rate=0.1"],
    ),
    "unknown_trainer_field": (
        [*BASE, "+trainer.learnig_rate=0.1"],
        ["trainer.learnig_rate=0.1", "not a SentenceTransformerTrainingArguments field", "'learning_rate'"],
    ),
    "override_syntax": ([*BASE, "trainer.learning_rate=[1"], ["trainer.learning_rate=[1", "override syntax"]),
    "wrong_value_type": ([*BASE, "trainer.learning_rate=fast"], ["trainer.learning_rate=fast", "a number"]),
    "seed_not_a_number": ([*BASE, "seed=abc"], ["seed=abc", "whole number"]),
    "batch_size_zero": ([*BASE, "trainer.per_device_train_batch_size=0"], ["batch_size=0", "positive"]),
    "batch_size_negative": ([*BASE, "trainer.per_device_train_batch_size=-4"], ["batch_size=-4", "positive"]),
    "unknown_batching": (
        [*BASE, "speed.batches=sequential"],
        ["speed.batches=sequential", "split_by_length", "random"],
    ),
    "unknown_batching_old_spelling": (  # deprecated, rewritten to speed.batches with a warning
        [*BASE, "trainer.train_sampling_strategy=sequential"],
        ["speed.batches=sequential", "split_by_length"],
    ),
    "split_with_in_batch_negatives": (
        [*BASE, "loss=mnrl", "speed=split_by_length"],
        ["speed.batches=split_by_length", "MultipleNegativesRankingLoss", "speed=group_by_length"],
    ),
    "fp16_and_bf16": ([*BASE, "trainer.bf16=true", "trainer.fp16=true"], ["trainer.bf16=true", "pick one"]),
    "best_model_without_eval": (
        [*BASE, "trainer.load_best_model_at_end=true"],
        ["load_best_model_at_end=true", "trainer.eval_strategy=epoch"],
    ),
    "metric_without_evaluator": (
        [*BASE, "evaluator=none", "optimized_metric=final_val_spearman_cosine"],
        ["optimized_metric=final_val_spearman_cosine", "evaluator=none"],
    ),
    "loss_target_does_not_import": (
        [*BASE, "loss._target_=no.such.Loss"],
        ["loss._target_=no.such.Loss", "does not import"],
    ),
    "evaluator_target_does_not_import": (
        [*BASE, "evaluator._target_=no.such.Evaluator"],
        ["evaluator._target_=no.such.Evaluator", "does not import"],
    ),
    "unknown_loss_argument": ([*BASE, "+loss.temperature=0.5"], ["loss.temperature", "not an argument"]),
    "missing_data_file": ([*PAIRS, "data.source=missing.csv"], ["data.source=missing.csv", "no such file"]),
    "hub_dataset_offline": (
        [*PAIRS, "data.source=no-org/no-dataset"],
        ["data.source=no-org/no-dataset", "could not load this hub data set", "local csv"],
    ),
    "missing_column": (
        [*PAIRS, "data.source=ok.csv", "data.columns.sentence1=question"],
        ["['question'] not found", "Columns found: ['sentence1', 'sentence2', 'score']", "data.columns"],
    ),
    "empty_data": ([*PAIRS, "data.source=empty.csv"], ["data.source=empty.csv", "no rows"]),
    "non_numeric_label": (
        [*PAIRS, "data.source=yes_no.csv"],
        ["label column 'score' is not numeric", "['yes', 'no', 'yes']"],
    ),
    "label_outside_0_1": (
        [*PAIRS, "data.source=sts.csv"],
        ["data.columns.score", "expects labels in 0..1", "data.label_scale=5"],
    ),
    "mnrl_label_read_as_text": (MNRL_CATEGORY, ["data.columns.category", "looks like a label"]),
    "eval_split_of_one_file": (
        [*PAIRS, "data.source=ok.csv", "data.eval_split=validation"],
        ["data.eval_split=validation", "{split}"],
    ),
    "eval_fraction_out_of_range": (
        [*PAIRS, "data.source=ok.csv", "data.eval_fraction=1.5"],
        ["data.eval_fraction=1.5", "between 0 and 1"],
    ),
    "evaluator_without_eval_split": (
        [*PAIRS, "data.source=ok.csv", "data.eval_fraction=null"],
        ["evaluator._target_", "no eval split", "evaluator=none"],
    ),
    "strict_sanity_check": (
        [*PAIRS, "data.source=all_positive.csv", "strict=true"],
        ["strict=true", "identical_labels", "all 36 training labels are 1.0"],
    ),
    "max_seq_length_too_long": (["+experiment=demo", "model.max_seq_length=4096"], ["4096", "512"]),
    "model_path_missing": (
        ["+experiment=demo", "model.name_or_path=./no/such/model"],
        ["model.name_or_path=./no/such/model", "no such directory"],
    ),
    "unwritable_output_directory": (
        [*BASE, "paths.output_root=a_file/outputs"],
        ["paths.output_root", "Not a directory"],
    ),
    "tracking_server_unreachable": (
        [*BASE, "tracking.uri=http://127.0.0.1:9"],
        ["tracking.uri=http://127.0.0.1:9", "no MLflow server answers", "mlflow server"],
    ),
    "resume_unknown_run": ([*BASE, "+resume=0123456789abcdef"], ["resume=0123456789abcdef", "no such run"]),
    "append_existing_key": ([*BASE, "+seed=1"], ["+seed=1", "seed=1"]),
    "unknown_optimized_metric": ([*BASE, "optimized_metric=nope"], ["optimized_metric=nope", "Metrics:"]),
}


def _write_data(directory: Path) -> None:
    rows = [f"question {i} about orders,answer {i} about orders,{i % 2}" for i in range(40)]
    (directory / "ok.csv").write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")
    (directory / "empty.csv").write_text("sentence1,sentence2,score\n")
    (directory / "yes_no.csv").write_text("sentence1,sentence2,score\na b,c d,yes\ne f,g h,no\ni j,k l,yes\n")
    sts = [f"sentence {i} here,other sentence {i},{i % 6}" for i in range(40)]
    (directory / "sts.csv").write_text("sentence1,sentence2,score\n" + "\n".join(sts) + "\n")
    positives = [f"how do I {i},steps for {i},1.0" for i in range(40)]
    (directory / "all_positive.csv").write_text("sentence1,sentence2,score\n" + "\n".join(positives) + "\n")
    category = [f"ticket {i} text,guide {i} text,{['billing', 'refund', 'login'][i % 3]}" for i in range(40)]
    (directory / "category.csv").write_text("anchor,positive,category\n" + "\n".join(category) + "\n")
    (directory / "a_file").write_text("not a directory")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from hydra.core.global_hydra import GlobalHydra

    from stembed.recipe.app import run_hydra

    args, expected = CASES[case]
    _write_data(tmp_path)
    monkeypatch.chdir(tmp_path)
    for key in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "STEMBED_DEBUG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_info:
        run_hydra(list(args))
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2, stderr[-3000:]
    message = stderr[stderr.index("stembed: error: ") :]
    assert "Traceback" not in stderr
    for text in expected:
        assert text in message, (text, message)
    assert len(message.strip().splitlines()) == 1  # one paragraph
    if os.path.exists(tmp_path / "outputs" / "mlflow.db"):
        assert not [r for r in all_runs(store_uri(tmp_path)) if r.info.status == "RUNNING"]
    assert not list(tmp_path.glob("outputs/runs/*/*/model"))


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    from conftest import run_stembed

    result = run_stembed(["train", "--debug", "+experiment=nope"], tmp_path)
    assert result.returncode != 0 and "Traceback" in result.stderr
