"""Bad input: one paragraph naming the field, the value and the fix; exit code 2; no traceback; nothing
left RUNNING in MLflow and no model directory. The table below is docs/errors.md's table of bad inputs.

The cases run `stembed train` in-process (the same `run_hydra` the command calls) so thirty of them take
seconds; tests/test_train.py runs some as real processes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import all_runs, store_uri

pytestmark = pytest.mark.e2e  # real training runs in subprocesses: `make test`, not test-fast

BASE = ["+experiment=demo", "model=tiny", "trainer=smoke"]
PAIRS = [*BASE, "data=pairs"]
MNRL_CATEGORY = [*PAIRS, "loss=mnrl", "data.source=category.csv", "data.columns.sentence1=anchor"]
LONG_PROMPT = "represent this customer support question for retrieving the most relevant help articles"
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
    "fp16_and_bf16": ([*BASE, "speed.bf16=true", "trainer.fp16=true"], ["speed.bf16=true", "pick one"]),
    "fp16_and_bf16_old_spelling": (  # deprecated, rewritten to speed.bf16 with a warning
        [*BASE, "trainer.bf16=true", "trainer.fp16=true"],
        ["speed.bf16=true", "pick one"],
    ),
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
        [*BASE, "evaluator.call._target_=no.such.Evaluator"],
        ["evaluator.call._target_=no.such.Evaluator", "does not import"],
    ),
    "evaluator_target_old_spelling": (  # deprecated, rewritten to evaluator.call._target_ with a warning
        [*BASE, "evaluator._target_=no.such.Evaluator"],
        ["evaluator.call._target_=no.such.Evaluator", "does not import"],
    ),
    "unknown_evaluator_argument": (
        [*BASE, "+evaluator.call.nmae=x"],
        ["evaluator.call.nmae", "not an argument of", "EmbeddingSimilarityEvaluator"],
    ),
    "evaluator_named_in_call": (
        [*BASE, "+evaluator.call.name=x"],
        ["evaluator.call.name=x", "evaluator.name"],
    ),
    "unknown_builder_argument": ([*BASE, "+model.call.dim=3"], ["model.call.dim", "tiny_static_model"]),
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
        ["evaluator.call._target_", "no eval split", "evaluator=none"],
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
    # Issue 17: labels that train to NaN are bad input, before any run opens (17.3, 17.16).
    "nan_labels": (
        [*PAIRS, "data.source=nan_label.csv"],
        ["label column 'score'", "2 empty or non-finite", "row(s) 3, 7"],
    ),
    "empty_label_cell": ([*PAIRS, "data.source=empty_label.csv"], ["label column 'score'", "row(s) 2"]),
    "infinite_label": ([*PAIRS, "data.source=inf_label.csv"], ["non-finite (NaN/inf)", "row(s) 4"]),
    "ragged_csv": ([*PAIRS, "data.source=ragged.csv"], ["label column 'score'", "row(s) 2, 4"]),
    # Settings that make training a no-op or are silently ignored (17.5).
    "learning_rate_zero": ([*BASE, "trainer.learning_rate=0"], ["trainer.learning_rate=0", "nothing"]),
    "zero_training_steps": (
        [*BASE, "trainer.num_train_epochs=0", "trainer.max_steps=-1"],
        ["trainer.num_train_epochs=0", "0 training steps"],
    ),
    "max_steps_negative": ([*BASE, "trainer.max_steps=-5"], ["trainer.max_steps=-5", "-1 to train"]),
    "warmup_ratio_above_one": ([*BASE, "+trainer.warmup_ratio=2"], ["trainer.warmup_ratio=2", "between 0"]),
    "max_seq_length_zero_builder": (
        [*BASE, "model.max_seq_length=0"],
        ["model.max_seq_length=0", "positive"],
    ),
    # One column mapped to both inputs trains on (x, x) pairs (17.6).
    "same_column_twice_strict": (
        [*PAIRS, "data.source=ok.csv", "data.columns.sentence2=sentence1", "strict=true"],
        ["identical_pair_texts", "36 of 36 training rows pair a text with itself"],
    ),
    # Trainer values that failed only after the run opened (17.9).
    "learning_rate_negative": ([*BASE, "trainer.learning_rate=-0.1"], ["trainer.learning_rate=-0.1"]),
    "gradient_accumulation_zero": (
        [*BASE, "trainer.gradient_accumulation_steps=0"],
        ["trainer.gradient_accumulation_steps=0", "1 or more"],
    ),
    "seed_negative": ([*BASE, "seed=-1"], ["seed=-1", "between 0 and"]),
    # A model path that exists but is not a model (17.10).
    "model_path_is_a_file": (["+experiment=demo", "model.name_or_path=a_file"], ["a_file", "is a file"]),
    "model_dir_empty": (["+experiment=demo", "model.name_or_path=empty_dir"], ["no model in this directory"]),
    "model_dir_only_config": (
        ["+experiment=demo", "model.name_or_path=only_config"],
        ["model.name_or_path=only_config", "could not load a model"],
    ),
    "image_model_dir": (["+experiment=demo", "model.name_or_path=vit_model"], ["vit_model", "text"]),
    # Store problems (17.11).
    "corrupt_store": ([*BASE, "tracking.uri=sqlite:///corrupt.db"], ["not a readable SQLite database"]),
    "foreign_sqlite_store": ([*BASE, "tracking.uri=sqlite:///foreign.db"], ["not an MLflow store"]),
    "empty_experiment_name": ([*BASE, "tracking.experiment="], ["tracking.experiment=''", "needs a name"]),
    "deleted_experiment": (
        [*BASE, "tracking.uri=sqlite:///deleted/mlflow.db", "tracking.experiment=gone"],
        ["tracking.experiment=gone", "is deleted", "mlflow experiments restore"],
    ),
    # Evaluation setup that failed after the run opened (17.12).
    "eval_split_of_one_row": (
        [*PAIRS, "data.source=two_rows.csv", "data.eval_fraction=0.1"],
        ["data.eval_fraction=0.1", "at least 2 eval rows"],
    ),
    "binary_evaluator_graded_labels": (
        [*PAIRS, "data.source=graded.csv", "evaluator=binary"],
        ["evaluator=binary", "exactly 0 or 1", "evaluator=similarity"],
    ),
    # Misleading messages (17.16).
    "data_limit_not_whole": ([*PAIRS, "data.source=ok.csv", "data.limit=2.5"], ["data.limit=2.5", "whole"]),
    "numeric_texts": ([*PAIRS, "data.source=numeric.csv"], ["data.columns.sentence2 holds int values"]),
    "list_valued_texts": ([*PAIRS, "data.source=lists.jsonl"], ["data.columns.sentence1 holds list values"]),
    "mixed_type_jsonl": ([*PAIRS, "data.source=mixed.jsonl"], ["column 'sentence2' mixes number, str"]),
    "reused_run_directory": ([*BASE, "hydra.run.dir=reused_run"], ["reused_run", "earlier run's model"]),
    # Issue 24: a prompt that leaves no room for the text (24.3), values that failed after the run opened.
    "prompt_fills_max_seq_length": (
        [*BASE, "model.max_seq_length=6", "model.prompts.query='represent this customer question please'"],
        ["model.prompts.query", "5 tokens", "max_seq_length is 6", "leaves 1 token(s)"],
    ),
    "prompt_fills_max_seq_length_minilm": (
        ["+experiment=demo", "model.max_seq_length=16", f"model.prompts.query='{LONG_PROMPT}'"],
        ["model.prompts.query", "max_seq_length is 16", "leaves 0 token(s)", "raise model.max_seq_length"],
    ),
    "register_model_invalid_name": (
        [*BASE, "tracking.register_model='bad/name:1'"],
        ["tracking.register_model=bad/name:1", "not a valid MLflow registered model name"],
    ),
    "dataloader_num_workers_negative": (
        [*BASE, "trainer.dataloader_num_workers=-1"],
        ["trainer.dataloader_num_workers=-1", "positive number of worker processes"],
    ),
    "optuna_zero_trials": (
        ["-m", "+hparams_search=demo_optuna", *BASE, "hydra.sweeper.n_trials=0"],
        ["hydra.sweeper.n_trials=0", "1 or more trials"],
    ),
    "trainer_seed_negative": ([*BASE, "trainer.seed=-1"], ["trainer.seed=-1", "between 0 and"]),
    "eval_source_of_one_row": (
        [*PAIRS, "data.source=ok.csv", "data.eval_source=one_row.csv"],
        ["data.eval_source=one_row.csv", "1 eval row(s)", "at least 2"],
    ),
    "mining_sampling_strategy_unknown": (
        [*BASE, "mining=hard_negatives", "mining.call.sampling_strategy=bogus"],
        ["mining.call.sampling_strategy=bogus", "top", "random"],
    ),
    "mining_num_negatives_not_whole": (
        [*BASE, "mining=hard_negatives", "mining.call.num_negatives=2.5"],
        ["mining.call.num_negatives=2.5", "whole number"],
    ),
    "mining_model_missing": (
        [*BASE, "mining=hard_negatives", "mining.model=/nonexistent"],
        ["mining.model=/nonexistent"],
    ),
    "mining_corpus_of_one_text": (
        [*PAIRS, "data.source=one_positive.csv", "mining=hard_negatives"],
        ["mining=hard_negatives", "1 distinct positive text(s)", "mining=none"],
    ),
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
    (directory / "one_row.csv").write_text("sentence1,sentence2,score\n" + rows[0] + "\n")
    same = [f"question {i} about orders,the one answer,1.0" for i in range(40)]
    (directory / "one_positive.csv").write_text("sentence1,sentence2,score\n" + "\n".join(same) + "\n")
    _write_issue_17_data(directory, rows)


def _write_issue_17_data(directory: Path, rows: list[str]) -> None:
    header = "sentence1,sentence2,score\n"
    nan_rows = [row if i not in (2, 6) else row.rsplit(",", 1)[0] + ",nan" for i, row in enumerate(rows)]
    (directory / "nan_label.csv").write_text(header + "\n".join(nan_rows) + "\n")
    empty = [row if i != 1 else row.rsplit(",", 1)[0] + "," for i, row in enumerate(rows)]
    (directory / "empty_label.csv").write_text(header + "\n".join(empty) + "\n")
    inf = [row if i != 3 else row.rsplit(",", 1)[0] + ",inf" for i, row in enumerate(rows)]
    (directory / "inf_label.csv").write_text(header + "\n".join(inf) + "\n")
    ragged = [row if i not in (1, 3) else row.rsplit(",", 1)[0] for i, row in enumerate(rows)]
    (directory / "ragged.csv").write_text(header + "\n".join(ragged) + "\n")
    (directory / "two_rows.csv").write_text(header + "\n".join(rows[:2]) + "\n")
    graded = [f"question {i} about orders,answer {i} about orders,{(i % 5) / 4}" for i in range(40)]
    (directory / "graded.csv").write_text(header + "\n".join(graded) + "\n")
    numeric = [f"question {i},{1000 + i},{i % 2}" for i in range(40)]
    (directory / "numeric.csv").write_text(header + "\n".join(numeric) + "\n")
    lists = [json.dumps({"sentence1": [f"a {i}"], "sentence2": f"b {i}", "score": i % 2}) for i in range(40)]
    (directory / "lists.jsonl").write_text("\n".join(lists) + "\n")
    mixed = [
        json.dumps({"sentence1": f"a {i}", "sentence2": f"b {i}" if i % 2 else i, "score": 1})
        for i in range(40)
    ]
    (directory / "mixed.jsonl").write_text("\n".join(mixed) + "\n")
    (directory / "empty_dir").mkdir()
    (directory / "only_config").mkdir()
    (directory / "only_config" / "config.json").write_text('{"model_type": "bert"}')
    (directory / "reused_run" / "model").mkdir(parents=True)
    (directory / "corrupt.db").write_bytes(b"this is not an sqlite database" * 100)
    with closing(sqlite3.connect(directory / "foreign.db")) as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        db.commit()


def _write_case_data(case: str, directory: Path) -> None:
    """Fixtures that take seconds to build, made only for the case that needs them."""
    if case == "image_model_dir":
        from transformers import ViTConfig, ViTModel

        config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37)
        ViTModel(config).save_pretrained(directory / "vit_model")
    if case == "deleted_experiment":
        from mlflow.tracking import MlflowClient

        (directory / "deleted").mkdir()
        client = MlflowClient(tracking_uri=f"sqlite:///{directory / 'deleted' / 'mlflow.db'}")
        client.delete_experiment(client.create_experiment("gone"))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from hydra.core.global_hydra import GlobalHydra

    from stembed.recipe.app import run_hydra

    args, expected = CASES[case]
    _write_data(tmp_path)
    _write_case_data(case, tmp_path)
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


def _run_in_process(args: list[str], directory: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> str:  # type: ignore[no-untyped-def]
    """Run `stembed train ARGS` in-process in directory; expect exit code 2 and return stderr."""
    from hydra.core.global_hydra import GlobalHydra

    from stembed.recipe.app import run_hydra

    monkeypatch.chdir(directory)
    for key in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR", "STEMBED_DEBUG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    GlobalHydra.instance().clear()
    with pytest.raises(SystemExit) as exit_info:
        run_hydra(list(args))
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in stderr, stderr[-3000:]
    return stderr


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i: read-only even for root (plain permissions are not); False where chattr is missing."""
    import subprocess

    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.parametrize("what", ["directory", "database"])
def test_read_only_store(what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue 17.11: a read-only store directory (no lock file) or database file: exit 2, naming it."""
    from mlflow.tracking import MlflowClient

    store = tmp_path / "store"
    store.mkdir()
    if what == "database":
        MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}").search_experiments()  # a real store
    target = store / "mlflow.db" if what == "database" else store
    if not _immutable(target, True):
        pytest.skip("chattr is not available to make a path read-only for root")
    try:
        stderr = _run_in_process(
            [*BASE, f"tracking.uri=sqlite:///{store / 'mlflow.db'}"], tmp_path, monkeypatch, capsys
        )
    finally:
        _immutable(target, False)
    assert ("cannot create the lock file" if what == "directory" else "cannot write") in stderr
    assert str(store) in stderr


def test_many_rows_dropped_for_empty_texts_warns_with_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Issue 17.6: half the rows dropped for a blank text is a warning with counts (strict stops it here)."""
    rows = [f"question {i},{'answer ' + str(i) if i % 2 else ' '},1.0" for i in range(40)]
    (tmp_path / "half_blank.csv").write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")
    stderr = _run_in_process(
        [*PAIRS, "data.source=half_blank.csv", "strict=true"], tmp_path, monkeypatch, capsys
    )
    assert "warning: data.source=half_blank.csv: dropped 20 of 40 rows (50%)" in stderr


def test_label_scale_key_exists_for_pair_data() -> None:
    """Issue 17.16: the 0..1 range hint says data.label_scale=5, which must work without a '+'."""
    from hydra import compose, initialize_config_dir

    from stembed.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*PAIRS, "data.source=x.csv", "data.label_scale=5"])
    assert cfg.data.label_scale == 5


def test_any_row_dropped_for_an_empty_text_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    """Issue 24.10: one blank cell in 200 rows (under the old 5% threshold) is still a warning with counts."""
    rows = [f"question {i},{'answer ' + str(i) if i != 7 else ' '},1.0" for i in range(200)]
    (tmp_path / "one_blank.csv").write_text("sentence1,sentence2,score\n" + "\n".join(rows) + "\n")
    stderr = _run_in_process(
        [*PAIRS, "data.source=one_blank.csv", "strict=true"], tmp_path, monkeypatch, capsys
    )
    assert "warning: data.source=one_blank.csv: dropped 1 of 200 rows (under 1%)" in stderr
