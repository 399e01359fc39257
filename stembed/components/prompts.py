"""Prompts end to end: `model.prompts` (name -> text) and the columns each one applies to.

One mapping drives every place a text is embedded, so training, mining, evaluation and inference
agree: the model's own `prompts` (saved in its config, so `SentenceTransformer(path).encode(x,
prompt_name="query")` works after loading), the trainer's `prompts` (column -> text), the mining
query/corpus prompts and the evaluators' query/corpus prompts.

`model.prompt_columns` maps a column to a prompt name; both are stembed's own keys of the `model`
group (a builder's own arguments go under `model.call`). Unset (null), the first text column takes
the `query` prompt and every other text column the `document` prompt (the retrieval convention);
hard-negative columns always take the prompt of the second column.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stembed.errors import StembedError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

QUERY, DOCUMENT = "query", "document"


def configured(model_cfg: Any) -> tuple[dict[str, str], dict[str, str] | None]:
    """(prompts, prompt_columns) from the `model` group, as plain dicts, checked."""
    from omegaconf import OmegaConf

    def plain(key: str) -> Any:
        value = model_cfg.get(key) if model_cfg is not None else None
        return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value

    prompts, columns = plain("prompts") or {}, plain("prompt_columns")
    if not isinstance(prompts, dict) or not all(isinstance(v, str) for v in prompts.values()):
        raise StembedError(
            f"model.prompts={prompts}: must map a prompt name to its text, e.g. "
            'model.prompts=\'{query: "query: ", document: "passage: "}\'.'
        )
    if columns is not None and not isinstance(columns, dict):
        raise StembedError(
            f"model.prompt_columns={columns}: must map a column to a prompt name, e.g. "
            "model.prompt_columns='{sentence1: query, sentence2: document}'."
        )
    return {str(k): v for k, v in prompts.items()}, columns


def set_on_model(model: SentenceTransformer, prompts: Mapping[str, str]) -> None:
    """Store the prompts in the model, so they are saved with it (config_sentence_transformers.json).

    An empty prompt in the config does not erase one the base model was saved with.
    """
    given = {name: text for name, text in prompts.items() if text}
    if given:
        model.prompts = {**model.prompts, **given}


MIN_TEXT_TOKENS = 4  # a prompt must leave at least this many tokens of max_seq_length for the text


def check_prompt_lengths(model: Any, prompts: Mapping[str, str]) -> None:
    """A prompt that fills (almost) all of max_seq_length cuts every text away: the model would train
    and be evaluated on the prompt alone (NaN metrics), so it is bad input before any run opens."""
    limit = sequence_limit(model)
    if limit is None:
        return
    for name, text in prompts.items():
        tokens = prompt_tokens(model, text) if text else None
        if tokens is not None and limit - tokens < MIN_TEXT_TOKENS:
            raise StembedError(
                f"model.prompts.{name}: the prompt is {tokens} tokens (with the model's special tokens) "
                f"and max_seq_length is {limit}, which leaves {max(limit - tokens, 0)} token(s) for the text "
                f"(at least {MIN_TEXT_TOKENS} are needed): every text would be cut away and the model would "
                f"learn from the prompt alone. Shorten model.prompts.{name}, or raise model.max_seq_length."
            )


def sequence_limit(model: Any) -> int | None:
    """The tokens a text is cut to: max_seq_length, or a tokenizers.Tokenizer's truncation length."""
    limit = getattr(model, "max_seq_length", None)
    if isinstance(limit, int) and limit > 0:
        return limit
    truncation = getattr(getattr(model, "tokenizer", None), "truncation", None)
    return int(truncation["max_length"]) if isinstance(truncation, dict) else None


def prompt_tokens(model: Any, text: str) -> int | None:
    """Tokens of text, special tokens included and not truncated; None for a model without a tokenizer."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return None
    if callable(getattr(tokenizer, "no_truncation", None)):  # a tokenizers.Tokenizer (StaticEmbedding)
        from tokenizers import Tokenizer  # local: only models built on a bare tokenizer need it

        untruncated = Tokenizer.from_str(tokenizer.to_str())
        untruncated.no_truncation()
        return len(untruncated.encode(text).ids)
    try:
        return len(tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])
    except TypeError:  # a tokenizer with another signature: nothing to check
        return None


def effective(model: SentenceTransformer, prompt_columns: Mapping[str, str] | None) -> dict[str, str]:
    """The model's non-empty prompts (its saved ones plus model.prompts), prompt_columns checked."""
    prompts = {name: text for name, text in model.prompts.items() if text}
    unknown = sorted({str(v) for v in (prompt_columns or {}).values()} - set(model.prompts))
    if unknown:
        raise StembedError(
            f"model.prompt_columns: prompt name(s) {unknown} are not prompts of the model "
            f"({sorted(model.prompts)}). Add them with +model.prompts.NAME=TEXT or map the columns to "
            "names it has."
        )
    return prompts


def column_prompt_names(
    columns: list[str], prompts: Mapping[str, str], prompt_columns: Mapping[str, str] | None
) -> dict[str, str]:
    """column -> prompt name for the text columns of a dataset (columns without a prompt left out)."""
    if not prompts:
        return {}
    names: dict[str, str] = {}
    for index, column in enumerate(columns):
        if prompt_columns is not None and column in prompt_columns:
            names[column] = str(prompt_columns[column])
        elif index >= 2 and column.startswith("negative") and len(columns) > 1 and columns[1] in names:
            names[column] = names[columns[1]]  # mined negatives are documents like the positive
        elif prompt_columns is None:
            default = QUERY if index == 0 else DOCUMENT
            if default in prompts:
                names[column] = default
    return names


def column_prompts(
    columns: list[str], prompts: Mapping[str, str], prompt_columns: Mapping[str, str] | None
) -> dict[str, str]:
    """column -> prompt text: the trainer's `prompts` for a dataset with these text columns."""
    names = column_prompt_names(columns, prompts, prompt_columns)
    return {column: prompts[name] for column, name in names.items() if prompts.get(name)}


def side_prompts(
    columns: list[str], prompts: Mapping[str, str], prompt_columns: Mapping[str, str] | None
) -> tuple[str, str]:
    """(query prompt, corpus prompt) texts: those of the first and second text column ('' for none)."""
    texts = column_prompts(columns, prompts, prompt_columns)
    first = texts.get(columns[0], "") if columns else ""
    second = texts.get(columns[1], "") if len(columns) > 1 else first
    return first, second


def apply_to_evaluator(evaluator: Any, query_prompt: str, corpus_prompt: str) -> None:
    """Give an evaluator the query/corpus prompts (recursing into a SequentialEvaluator).

    Evaluators with prompt arguments (InformationRetrievalEvaluator, LabelRetrievalEvaluator) get them
    as such. Pair evaluators without them (EmbeddingSimilarityEvaluator, BinaryClassificationEvaluator)
    get prompted texts: identical to encode(prompt=...) for models whose pooling counts the prompt's
    tokens (Pooling include_prompt=true, the default).
    """
    if evaluator is None:
        return
    if hasattr(evaluator, "evaluators"):  # SequentialEvaluator
        for inner in evaluator.evaluators:
            apply_to_evaluator(inner, query_prompt, corpus_prompt)
        return
    if hasattr(evaluator, "query_prompt") and hasattr(evaluator, "corpus_prompt"):
        # "" and not None: encode_query/encode_document would fall back to the model's query/document prompt
        evaluator.query_prompt, evaluator.corpus_prompt = query_prompt, corpus_prompt
        if hasattr(evaluator, "query_prompt_name"):
            evaluator.query_prompt_name = evaluator.corpus_prompt_name = None
    elif not (query_prompt or corpus_prompt):
        return
    elif hasattr(evaluator, "sentences1") and hasattr(evaluator, "sentences2"):
        evaluator.sentences1 = [query_prompt + text for text in evaluator.sentences1]
        evaluator.sentences2 = [corpus_prompt + text for text in evaluator.sentences2]
    else:
        print(
            f"stembed: warning: {type(evaluator).__name__} takes no prompts; it embeds texts without them.",
            file=sys.stderr,
        )


def describe(prompts: Mapping[str, str], names: Mapping[str, str]) -> str:
    """One line for the card: which prompt goes on which column."""
    if not any(prompts.values()):
        return ""
    shown = ", ".join(f"`{name}`: {text!r}" for name, text in prompts.items() if text)
    used = ", ".join(f"{column} → `{name}`" for column, name in names.items() if prompts.get(name))
    return f"{shown} (columns: {used or 'none'})"
