"""Loading pair data from every supported file type, splitting by seed, and errors on bad data."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from stembed.data.demo import demo_pairs
from stembed.data.loading import load_pairs
from stembed.errors import StembedError

ROWS = [{"q1": f"question {i}", "q2": f"other question {i}", "dup": i % 2} for i in range(40)]
COLUMNS = {"sentence1": "q1", "sentence2": "q2", "score": "dup"}


def write(path: Path) -> Path:
    frame = pd.DataFrame(ROWS)
    name = path.name.removesuffix(".gz")
    if name.endswith(".csv"):
        text = frame.to_csv(index=False)
    elif name.endswith(".tsv"):
        text = frame.to_csv(index=False, sep="\t")
    elif name.endswith(".jsonl"):
        text = frame.to_json(orient="records", lines=True)
    elif name.endswith(".json"):
        text = json.dumps(ROWS)
    else:
        frame.to_parquet(path)
        return path
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    "name", ["p.csv", "p.tsv", "p.jsonl", "p.json", "p.parquet", "p.csv.gz", "p.jsonl.gz"]
)
def test_every_file_type_loads_with_column_mapping(tmp_path: Path, name: str) -> None:
    data = load_pairs(str(write(tmp_path / name)), COLUMNS, eval_fraction=0.25, seed=1)
    assert data.train.column_names == ["sentence1", "sentence2", "score"]
    assert len(data.train) == 30 and len(data.eval) == 10
    assert data.train.features["score"].dtype == "float32"
    assert data.name == name and data.hub_id is None
    assert data.stats["rows_in"] == 40


def test_split_and_limit_are_deterministic_by_seed(tmp_path: Path) -> None:
    path = str(write(tmp_path / "p.csv"))
    first = load_pairs(path, COLUMNS, limit=20, seed=7)
    again = load_pairs(path, COLUMNS, limit=20, seed=7)
    other = load_pairs(path, COLUMNS, limit=20, seed=8)
    assert len(first.train) + len(first.eval) == 20
    assert first.train["sentence1"] == again.train["sentence1"]
    assert first.fingerprint == again.fingerprint != other.fingerprint


def test_explicit_eval_source(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv")
    evaluation = write(tmp_path / "eval.jsonl")
    data = load_pairs(str(train), COLUMNS, eval_source=str(evaluation))
    assert len(data.train) == 40 and len(data.eval) == 40


def test_missing_column_names_file_found_and_expected(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv")
    with pytest.raises(StembedError) as err:
        load_pairs(str(path), {"sentence1": "question1", "sentence2": "q2", "score": "dup"})
    message = str(err.value)
    assert str(path) in message and "['q1', 'q2', 'dup']" in message and "question1" in message


def test_non_numeric_label_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv")
    with pytest.raises(StembedError, match="label column 'score' is not numeric"):
        load_pairs(str(path), {"sentence1": "q1", "sentence2": "q2", "score": "q2"})


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(StembedError, match="no such file"):
        load_pairs(str(tmp_path / "absent.csv"), COLUMNS)
    odd = tmp_path / "p.xlsx"
    odd.write_text("x")
    with pytest.raises(StembedError, match="unknown file type"):
        load_pairs(str(odd), COLUMNS)


def test_demo_pairs_are_deterministic_balanced_and_disjoint() -> None:
    data = demo_pairs(n_train=90, n_eval=30, seed=3)
    assert data.train.to_dict() == demo_pairs(n_train=90, n_eval=30, seed=3).train.to_dict()
    assert sorted(set(data.train["score"])) == [0.0, 0.5, 1.0]
    assert data.train["score"].count(1.0) == 30
    train_sentences = set(data.train["sentence1"]) | set(data.train["sentence2"])
    eval_sentences = set(data.eval["sentence1"]) | set(data.eval["sentence2"])
    assert not train_sentences & eval_sentences
