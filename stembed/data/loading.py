"""Load pair data from a local file or a hub data set into train/eval `datasets.Dataset`s."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.errors import StembedError

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset

LABEL_COLUMNS = ("score", "label", "scores", "labels")
FILE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


@dataclass
class PairData:
    """Train and eval pairs plus what the run records about them."""

    train: Dataset
    eval: Dataset | None
    name: str
    source: str
    hub_id: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def label_column(self) -> str | None:
        """The column the trainer treats as the label, if any."""
        return next((c for c in self.train.column_names if c in LABEL_COLUMNS), None)

    @property
    def fingerprint(self) -> str:
        """A short content hash of train and eval data."""
        digest = hashlib.sha256()
        for part in (self.train, self.eval):
            if part is not None:
                digest.update(_hash_frame(part.to_pandas()))
        return digest.hexdigest()[:16]


def _hash_frame(frame: pd.DataFrame) -> bytes:
    import pandas as pd

    return pd.util.hash_pandas_object(frame, index=False).values.tobytes() + ",".join(frame.columns).encode()


def file_format(path: Path) -> str | None:
    """csv/tsv/jsonl/json/parquet from the suffix (a trailing .gz is allowed), or None."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return FILE_SUFFIXES.get(suffixes[-1]) if suffixes else None


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or file_format(Path(source)) is not None


def read_table(path: Path) -> pd.DataFrame:
    """Read a local csv/tsv/jsonl/json/parquet file (optionally gzipped) into a DataFrame."""
    import pandas as pd

    fmt = file_format(path)
    if fmt is None:
        raise StembedError(
            f"data.source={path}: unknown file type '{''.join(path.suffixes)}'. "
            f"Use one of {', '.join(FILE_SUFFIXES)} (optionally .gz), or a hub data set id."
        )
    try:
        if fmt in ("csv", "tsv"):
            return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",", keep_default_na=False, na_values=[""])
        if fmt == "jsonl":
            return pd.read_json(path, lines=True)
        if fmt == "json":
            try:
                return pd.read_json(path)  # an array of records
            except ValueError:
                return pd.read_json(path, lines=True)  # JSON lines saved as .json
        return pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise StembedError(
            f"data.source={path}: could not read it as {fmt} ({err}). Check the file's format and encoding."
        ) from err


def _load_source(source: str, subset: str | None, split: str, field_name: str) -> tuple[Dataset, str | None]:
    """(dataset, hub id or None) for a local file or a hub data set."""
    from datasets import Dataset

    path = Path(source).expanduser()
    if path.is_file():
        return Dataset.from_pandas(read_table(path), preserve_index=False), None
    if _looks_like_path(source):
        raise StembedError(
            f"{field_name}={source}: no such file (looked in {path.resolve().parent}). "
            "Give an existing csv/tsv/jsonl/json/parquet path (relative paths start from the directory "
            "you ran stembed in) or a hub data set id."
        )
    return _load_hub(source, subset, split, field_name), source


def _load_hub(hub_id: str, subset: str | None, split: str, field_name: str) -> Dataset:
    import datasets

    try:
        return datasets.load_dataset(hub_id, subset, split=split)
    except Exception as err:  # datasets raises many types: offline, not found, bad split
        raise StembedError(
            f"{field_name}={hub_id} (subset={subset}, split={split}): could not load this hub data set: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}. Without hub access, download "
            f"it once or point {field_name} at a local csv/tsv/jsonl/json/parquet file."
        ) from err


def select_columns(dataset: Dataset, columns: dict[str, str], where: str) -> Dataset:
    """Keep and rename the mapped columns (output name -> source column), in mapping order."""
    found = dataset.column_names
    missing = [src for src in columns.values() if src not in found]
    if missing:
        raise StembedError(
            f"{where}: column(s) {missing} not found. Columns found: {found}. Columns expected "
            f"(data.columns, output: source): {dict(columns)}. Map them with "
            f"data.columns.<output>=<column in your data>."
        )
    return dataset.map(
        lambda batch: {out: batch[src] for out, src in columns.items()}, batched=True, remove_columns=found
    )


def _clean(dataset: Dataset, where: str) -> Dataset:
    """Drop rows with an empty text; make the label float32; fail on non-numeric labels."""
    from datasets import Value

    texts = [c for c in dataset.column_names if c not in LABEL_COLUMNS]
    dataset = dataset.filter(lambda row: all(isinstance(row[c], str) and row[c].strip() for c in texts))
    for column in (c for c in dataset.column_names if c in LABEL_COLUMNS):
        try:
            dataset = dataset.cast_column(column, Value("float32"))
        except (ValueError, TypeError) as err:
            sample = dataset[column][:3]
            raise StembedError(
                f"{where}: label column '{column}' is not numeric (first values: {sample}). "
                "Map a numeric column to it with data.columns, or drop it for losses without labels."
            ) from err
    if len(dataset) == 0:
        raise StembedError(
            f"{where}: no rows left after dropping empty texts. Check data.columns and the file."
        )
    return dataset


def finish_pairs(
    train: Dataset,
    eval_: Dataset | None,
    *,
    name: str,
    source: str,
    hub_id: str | None,
    rows_in: int,
    positive_min_score: float = 0.5,
) -> PairData:
    """Wrap built datasets in PairData with the statistics every run records."""
    stats: dict[str, Any] = {
        "rows_in": rows_in,
        "train_pairs": len(train),
        "eval_pairs": len(eval_) if eval_ is not None else 0,
        "positive_min_score": positive_min_score,
    }
    data = PairData(train=train, eval=eval_, name=name, source=source, hub_id=hub_id, stats=stats)
    if data.label_column:
        labels = train[data.label_column]
        stats["train_label_mean"] = round(float(sum(labels) / len(labels)), 4)
        stats["train_positive_share"] = round(sum(v >= positive_min_score for v in labels) / len(labels), 4)
    return data


def load_pairs(
    source: str,
    columns: dict[str, str],
    name: str | None = None,
    subset: str | None = None,
    split: str = "train",
    eval_source: str | None = None,
    eval_split: str | None = None,
    eval_fraction: float = 0.1,
    limit: int | None = None,
    positive_min_score: float = 0.5,
    seed: int = 42,
) -> PairData:
    """Load pairs from a file or hub id; eval from eval_source, eval_split, or a seeded hold-out."""
    columns = dict(columns)
    raw, hub_id = _load_source(source, subset, split, "data.source")
    rows_in = len(raw)
    if limit is not None:
        if limit <= 0:
            raise StembedError(
                f"data.limit={limit}: must be a positive number of rows, or null for all rows."
            )
        raw = raw.shuffle(seed=seed).select(range(min(limit, len(raw))))
    train = _clean(select_columns(raw, columns, f"data.source={source}"), f"data.source={source}")
    if eval_source or eval_split:
        eval_from = eval_source or source
        eval_raw, _ = _load_source(eval_from, subset, eval_split or split, "data.eval_source")
        where = f"data.eval_source={eval_from}"
        eval_ = _clean(select_columns(eval_raw, columns, where), where)
    elif eval_fraction and eval_fraction > 0:
        if not 0 < eval_fraction < 1 or len(train) < 2:
            raise StembedError(
                f"data.eval_fraction={eval_fraction}: must be between 0 and 1 with at least 2 rows "
                f"(have {len(train)}). Use 0 or null for no eval split."
            )
        parts = train.train_test_split(test_size=eval_fraction, seed=seed)
        train, eval_ = parts["train"], parts["test"]
    else:
        eval_ = None
    display = name or hub_id or Path(source).name
    return finish_pairs(
        train, eval_, name=display, source=source, hub_id=hub_id, rows_in=rows_in,
        positive_min_score=positive_min_score,
    )  # fmt: skip
