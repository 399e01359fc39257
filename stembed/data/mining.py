"""Hard-negative mining as a data stage, on sentence-transformers' own `util.mine_hard_negatives`.

Mining embeds every anchor and candidate once, so it is done once per (training pairs, mining
config, mining model) and cached under `paths.output_root/cache/mining/<key>` (a file lock keeps
parallel sweep jobs from mining the same thing twice). The output format follows the loss:
(anchor, positive, negative_1..n) tuples for in-batch-negative losses, labelled pairs for losses
that learn from a label per pair, triplets otherwise.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.components.kinds import BI_ENCODER, kind_of
from stembed.components.losses import innermost_loss, loss_kind
from stembed.components.model import load_model
from stembed.data.loading import _hash_frame, text_columns
from stembed.errors import StembedError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from torch import nn

FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")
# Arguments of the miner that stembed passes itself: the data, the model (mining.model), the columns,
# the prompts, the output shape (mining.output_format) and the search (mining.use_faiss).
PASSED_BY_STEMBED = (
    "dataset", "model", "anchor_column_name", "positive_column_name", "corpus", "query_prompt",
    "query_prompt_name", "corpus_prompt", "corpus_prompt_name", "output_format", "output_scores",
    "verbose", "cache_folder", "as_triplets", "margin", "include_positives", "use_faiss",
)  # fmt: skip
SAMPLE_ROWS = 20
CACHE_VERSION = 1  # bump when the cached files change shape


@dataclass
class MiningResult:
    """The mined training data and what the run records about it."""

    dataset: Dataset
    metrics: dict[str, float]
    sample: list[dict[str, Any]]
    cache_key: str
    cache_hit: bool
    output_format: str
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the model card."""
        m = self.metrics
        return (
            f"hard negatives mined with `sentence_transformers.util.mine_hard_negatives` "
            f"({self.output_format}): {m['mining_anchors']:.0f} anchors, "
            f"{m['mining_negatives_per_anchor']:.2f} negatives each, "
            f"{m['mining_anchors_without_negative']:.0f} without one; cache key `{self.cache_key}`"
        )


def mining_enabled(cfg: Any) -> bool:
    """mining=none is an empty group or `call._target_: null`."""
    call = cfg.get("call") if cfg else None
    if call is None and cfg and cfg.get("_target_"):  # a config file of the first release
        raise StembedError(
            f"mining._target_={cfg.get('_target_')}: the miner and its own arguments now go under "
            "mining.call (mining.call._target_=..., mining.call.num_negatives=...); mining.model, "
            "output_format, keep_pairs and use_faiss stay."
        )
    return bool(call) and bool(call.get("_target_"))


def mine_if_configured(
    cfg: Any,
    train: Dataset,
    loss: nn.Module,
    model: SentenceTransformer,
    output_root: str | Path,
    label_column: str | None = None,
    min_score: float = 0.5,
    prompts: tuple[str, str] = ("", ""),
) -> MiningResult | None:
    """The training data with mined hard negatives (None for mining=none), from the cache when it has them.

    `train` is the data as the loss will read it; `prompts` the (query, corpus) prompt texts of its
    first two columns; `model` the model being trained, used when mining.model is null.
    """
    if not mining_enabled(cfg):
        return None
    spec, output_format, keep_pairs = _spec(cfg, loss)
    pairs = positive_pairs(train, label_column, min_score)
    check_corpus(pairs)
    miner = _mining_model(cfg.get("model"), model)
    key = cache_key(
        pairs, train if keep_pairs and output_format == "labeled-pair" else None,
        {**spec, "output_format": output_format, "keep_pairs": keep_pairs},
        model_fingerprint(miner), prompts,
    )  # fmt: skip
    directory = Path(output_root) / "cache" / "mining" / key
    result = _cached_or_mined(
        directory,
        key,
        lambda: _mine(spec, output_format, keep_pairs, pairs, train, label_column, miner, prompts),
    )
    result.output_format, result.cache_key = output_format, key
    if len(result.dataset) == 0:
        raise StembedError(
            f"mining=hard_negatives: no anchor of {len(pairs)} got {spec.get('num_negatives', 3)} hard "
            f"negative(s) with mining.call.relative_margin={spec.get('relative_margin')}, "
            f"mining.call.max_score={spec.get('max_score')}, mining.call.range_max={spec.get('range_max')}, "
            "so nothing is left to train on. Relax the margins, raise mining.call.range_max, lower "
            "mining.call.num_negatives, or mine with a stronger model (mining.model=...)."
        )
    _warn_if_sparse(result, len(train))
    result.tags = {
        "stembed.mining_cache_key": key,
        "stembed.mining_cache": "hit" if result.cache_hit else "miss",
    }
    return result


def _warn_if_sparse(result: MiningResult, rows_before: int) -> None:
    """Say so when many anchors found no negative: n-tuple rows without one are dropped."""
    anchors = result.metrics["mining_anchors"]
    missing = result.metrics["mining_anchors_without_negative"]
    if anchors and missing / anchors > 0.2:
        print(
            f"stembed: warning: [mining] {missing:.0f} of {anchors:.0f} anchors got no hard negative "
            f"({result.output_format}: {rows_before} training rows became {len(result.dataset)}). Relax "
            "mining.call.relative_margin / mining.call.max_score, raise mining.call.range_max, or mine "
            "with a stronger model (mining.model=...).",
            file=sys.stderr,
        )


def _spec(cfg: Any, loss: nn.Module) -> tuple[dict[str, Any], str, bool]:
    """(the miner's arguments, resolved output format, keep_pairs), every key checked.

    The group's top level is stembed's (model, output_format, keep_pairs, use_faiss); `mining.call` is
    the miner with only its own arguments.
    """
    from omegaconf import OmegaConf
    from sentence_transformers.util import mine_hard_negatives

    values = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    # Hydra's own keys (_target_, _partial_) are not arguments.
    spec = {k: v for k, v in values["call"].items() if not k.startswith("_")}
    accepted = set(inspect.signature(mine_hard_negatives).parameters) - set(PASSED_BY_STEMBED)
    for key, value in spec.items():
        if key in PASSED_BY_STEMBED:
            own = f" Set mining.{key} instead." if key in ("model", "output_format", "use_faiss") else ""
            raise StembedError(
                f"mining.call.{key}={value}: stembed sets this argument of mine_hard_negatives itself (from "
                f"the data, the mining model, model.prompts and the loss). Remove it.{own}"
            )
        if key not in accepted:
            raise StembedError(
                f"mining.call.{key}={value}: not an argument of "
                f"sentence_transformers.util.mine_hard_negatives.{did_you_mean(key, accepted)} "
                f"Arguments: {', '.join(sorted(accepted))}."
            )
    check_miner_values(spec)
    spec["use_faiss"] = _use_faiss(values.get("use_faiss", "auto"))
    keep_pairs = bool(values.get("keep_pairs", True))
    return spec, output_format_for(str(values.get("output_format") or "auto"), loss), keep_pairs


SAMPLING_STRATEGIES = ("top", "random")
WHOLE_NUMBERS = {"num_negatives": 1, "range_min": 0, "range_max": 1, "batch_size": 1, "faiss_batch_size": 1}


def check_miner_values(spec: dict[str, Any]) -> None:
    """Miner values of the wrong kind fail here, naming the key, not as an IndexError or a TypeError
    deep in mine_hard_negatives (in `stembed mine` and in `stembed train` before the run opens)."""
    strategy = spec.get("sampling_strategy")
    if strategy is not None and strategy not in SAMPLING_STRATEGIES:
        raise StembedError(
            f"mining.call.sampling_strategy={strategy}: must be top (the closest valid candidates) or random "
            f"(sampled among them).{did_you_mean(str(strategy), SAMPLING_STRATEGIES)}"
        )
    for key, least in WHOLE_NUMBERS.items():
        value = spec.get(key)
        if value is None and key == "range_max":
            continue
        if key in spec and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise StembedError(
                f"mining.call.{key}={value}: must be a whole number of {least} or more, e.g. "
                f"mining.call.{key}={max(least, 1) if key != 'range_max' else 50}."
            )


def _use_faiss(value: Any) -> bool:
    """auto: faiss when it imports; true without faiss is an error naming the extra."""
    import importlib.util

    installed = importlib.util.find_spec("faiss") is not None
    if value == "auto":
        return installed
    if value is True and not installed:
        raise StembedError(
            "mining.use_faiss=true: faiss is not installed. Install it with pip install 'stembed[faiss]' "
            "(faiss-cpu), or use mining.use_faiss=auto (exact search without it)."
        )
    if not isinstance(value, bool):
        raise StembedError(f"mining.use_faiss={value}: must be auto, true or false.")
    return value


def output_format_for(requested: str, loss: nn.Module) -> str:
    """The miner's output format for this loss; a format the loss cannot read is an error."""

    name = type(innermost_loss(loss)).__name__
    kind = loss_kind(loss)
    reads_rows = kind is not None and (kind.text_pairs or kind.lists)
    mined_format = kind.family.traits.mined_format if reads_rows else "triplet"
    if requested == "auto":
        return mined_format
    if requested not in FORMATS:
        raise StembedError(
            f"mining.output_format={requested}: must be auto or one of {', '.join(FORMATS)}."
            + did_you_mean(requested, FORMATS)
        )
    tuples = ("triplet", "n-tuple")
    if requested != mined_format and not (requested in tuples and mined_format in tuples):
        fits = "triplet or n-tuple" if mined_format in tuples else mined_format
        raise StembedError(
            f"mining.output_format={requested}: {name} reads {fits} rows. Use mining.output_format=auto "
            f"(or {fits})."
        )
    return requested


def positive_pairs(train: Dataset, label_column: str | None, min_score: float) -> Dataset:
    """Distinct (anchor, positive) rows to mine for: the first two text columns of positive rows."""

    texts = text_columns(train)
    if len(texts) < 2:
        raise StembedError(
            f"mining=hard_negatives: the training data has columns {train.column_names}; mining needs "
            "(anchor, positive) text columns. Map two text columns with data.columns, or use mining=none."
        )
    rows = train
    if label_column is not None and label_column in train.column_names:
        rows = train.filter(lambda row: row[label_column] >= min_score)
    frame = rows.select_columns(texts[:2]).to_pandas().drop_duplicates(ignore_index=True)
    if frame.empty:
        raise StembedError(
            f"data.positive_min_score={min_score}: no positive pair to mine negatives for. Lower "
            "data.positive_min_score or use mining=none."
        )
    from datasets import Dataset

    return Dataset.from_pandas(frame, preserve_index=False)


def check_corpus(pairs: Dataset) -> None:
    """Negatives come from the other positives: with fewer than two distinct texts there is nothing to mine
    from, whatever the margins (their advice would mislead)."""
    positive = pairs.column_names[1]
    texts = len(set(pairs[positive][:]))
    if texts < 2:
        raise StembedError(
            f"mining=hard_negatives: the training data has {texts} distinct positive text(s) ('{positive}'), "
            "so there is no other text to mine a hard negative from. Mine on data with more texts, or train "
            "without mining (mining=none)."
        )


def _mining_model(name: str | None, model: SentenceTransformer) -> SentenceTransformer:
    """mining.model, or the model being trained (before training) when null.

    A reranker or sparse model cannot retrieve candidates itself: mining its data takes a bi-encoder.
    """
    if not name:
        if kind_of(model) is not BI_ENCODER:
            raise StembedError(
                f"mining.model=null: the model being trained is a {kind_of(model).name}, which cannot "
                "retrieve candidates. Name a bi-encoder to mine with: mining.model="
                "sentence-transformers/all-MiniLM-L6-v2 (or a bi-encoder run's model directory)."
            )
        return model
    from omegaconf import OmegaConf

    try:
        return load_model(OmegaConf.create({"name_or_path": str(name), "max_seq_length": None})).model
    except StembedError as err:  # load_model names the model group's key; this is mining's own
        raise StembedError(str(err).replace("model.name_or_path", "mining.model")) from err


def model_fingerprint(model: SentenceTransformer) -> str:
    """A hash of the weights, the architecture and the prompts: what decides the mined negatives."""
    import torch

    digest = hashlib.sha256(repr(model).encode() + json.dumps(model.prompts, sort_keys=True).encode())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(
    pairs: Dataset, kept: Dataset | None, spec: dict[str, Any], model_hash: str, prompts: tuple[str, str]
) -> str:
    """16 hex digits over everything the mined data depends on."""

    digest = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    digest.update(_hash_frame(pairs.to_pandas()))
    if kept is not None:
        digest.update(_hash_frame(kept.to_pandas()))
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    digest.update(model_hash.encode() + json.dumps(prompts).encode())
    return digest.hexdigest()[:16]


def _cached_or_mined(directory: Path, key: str, mine: Any) -> MiningResult:
    """Read the cache entry, or mine under a file lock and write it (atomically) for the next run."""
    from filelock import FileLock

    directory.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with FileLock(str(directory) + ".lock"):
        if (directory / "stats.json").is_file():
            result = _read(directory, key)
            result.metrics["mining_seconds"] = time.perf_counter() - started
            print(
                f"stembed: mining: cache hit, key {key}: reusing {len(result.dataset)} mined rows from "
                f"{directory} (not mined again)",
                file=sys.stderr,
            )
            return result
        print(f"stembed: mining: cache miss, key {key}: mining hard negatives ...", file=sys.stderr)
        result = mine()
        result.metrics["mining_seconds"] = time.perf_counter() - started
        _write(directory, result)
        print(
            f"stembed: mining: {len(result.dataset)} rows mined in {result.metrics['mining_seconds']:.1f} s, "
            f"cached as {directory}",
            file=sys.stderr,
        )
    return result


def _write(directory: Path, result: MiningResult) -> None:
    partial = directory.with_name(directory.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    result.dataset.to_pandas().to_parquet(partial / "mined.parquet", index=False)
    stats = {"metrics": result.metrics, "sample": result.sample, "output_format": result.output_format}
    (partial / "stats.json").write_text(json.dumps(stats, indent=1, default=str), encoding="utf-8")
    partial.rename(directory)


def _read(directory: Path, key: str) -> MiningResult:
    import pandas as pd
    from datasets import Dataset

    stats = json.loads((directory / "stats.json").read_text(encoding="utf-8"))
    dataset = Dataset.from_pandas(pd.read_parquet(directory / "mined.parquet"), preserve_index=False)
    metrics = {**stats["metrics"], "mining_cache_hit": 1.0}
    return MiningResult(dataset, metrics, stats["sample"], key, True, stats["output_format"])


def _mine(
    spec: dict[str, Any],
    output_format: str,
    keep_pairs: bool,
    pairs: Dataset,
    train: Dataset,
    label_column: str | None,
    model: SentenceTransformer,
    prompts: tuple[str, str],
) -> MiningResult:
    from sentence_transformers.util import mine_hard_negatives

    anchor, positive = pairs.column_names[:2]
    arguments = dict(spec)
    if isinstance(arguments.get("cross_encoder"), str):  # a name in the config: rescore with that model
        from sentence_transformers import CrossEncoder

        arguments["cross_encoder"] = CrossEncoder(arguments["cross_encoder"])
    try:
        mined = mine_hard_negatives(
            pairs, model, anchor_column_name=anchor, positive_column_name=positive,
            query_prompt=prompts[0], corpus_prompt=prompts[1], output_format=output_format,
            output_scores=True, verbose=True, **arguments,
        )  # fmt: skip
    except (ValueError, ImportError) as err:
        raise StembedError(
            f"mining: mine_hard_negatives refused the settings ({err}). Adjust mining.call.num_negatives, "
            "mining.call.range_min/range_max or the margins."
        ) from err
    frame = mined.to_pandas()
    anchors = pairs.unique(anchor)
    if output_format == "labeled-pair":
        frame, positive_scores, negative_scores = _labelled(frame, pairs, anchor, positive)
        with_negative = frame.loc[frame["_negative"], anchor].nunique()
        dataset = _labelled_dataset(frame, train, label_column, keep_pairs, anchor, positive)
        sample_frame = frame[frame["_negative"]].drop(columns="_negative")
    else:
        scores = frame.pop("scores").tolist()
        positive_scores = [s[0] for s in scores]
        negative_scores = [v for s in scores for v in s[1:]]
        with_negative = frame[anchor].nunique()
        from datasets import Dataset

        dataset = Dataset.from_pandas(frame, preserve_index=False)
        sample_frame = frame.assign(scores=scores)
    metrics = {
        "mining_anchors": float(len(anchors)),
        "mining_rows": float(len(dataset)),
        "mining_negatives_per_anchor": len(negative_scores) / max(len(anchors), 1),
        "mining_anchors_without_negative": float(len(anchors) - with_negative),
        "mining_positive_score_mean": _mean(positive_scores),
        "mining_negative_score_mean": _mean(negative_scores),
        "mining_cache_hit": 0.0,
    }
    sample = json.loads(sample_frame.head(SAMPLE_ROWS).to_json(orient="records"))
    return MiningResult(dataset, metrics, sample, "", False, output_format)


def _labelled(frame: pd.DataFrame, pairs: Dataset, anchor: str, positive: str) -> tuple[Any, list, list]:
    """The miner's labeled-pair rows (with similarity scores), each marked positive or mined negative."""
    known = set(zip(pairs[anchor], pairs[positive], strict=True))
    frame["_negative"] = [(a, p) not in known for a, p in zip(frame[anchor], frame[positive], strict=True)]
    scores = frame["score"]
    return frame, scores[~frame["_negative"]].tolist(), scores[frame["_negative"]].tolist()


def _labelled_dataset(
    frame: pd.DataFrame,
    train: Dataset,
    label_column: str | None,
    keep_pairs: bool,
    anchor: str,
    positive: str,
) -> Dataset:
    """Mined negatives labelled 0, added to the data's own pairs (keep_pairs) or to the positives."""
    import pandas as pd
    from datasets import Dataset, Value

    label = label_column or "label"
    negatives = frame.loc[frame["_negative"], [anchor, positive]].assign(**{label: 0.0})
    if keep_pairs and label_column is not None:
        base = train.to_pandas()[[anchor, positive, label]]
    else:
        base = frame.loc[~frame["_negative"], [anchor, positive]].assign(**{label: 1.0})
    rows = pd.concat([base, negatives], ignore_index=True)
    return Dataset.from_pandas(rows, preserve_index=False).cast_column(label, Value("float32"))


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def log_mining(tracker: Any, result: MiningResult | None, prefix: str = "") -> None:
    """mining_* metrics at step 0, and the sample of mined rows as the artifact mining/sample.json."""
    if result is None:
        return
    tracker.log_metrics(result.metrics, step=0, prefix=prefix)
    if getattr(tracker, "active", False):
        import mlflow

        name = f"mining/{prefix.rstrip('.') or 'sample'}.json"
        mlflow.log_text(json.dumps(result.sample, indent=1, ensure_ascii=False), name)
