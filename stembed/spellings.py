"""The current spelling of every deprecated key: stembed's own choices that the first release kept
inside library fields. `stembed train` and every command composing train.yaml (stembed.config) rewrite
them, each with a warning. No third-party import: `stembed --help` loads this module."""

from __future__ import annotations

import sys

# The groups in which stembed calls a library: their top level is stembed's own keys (below), and the
# call itself, a `_target_` with only its own arguments, is the group's `call` key. (`loss` and `data`
# are calls through and through; `trainer` is SentenceTransformerTrainingArguments fields only.)
CALL = "call"
GROUP_KEYS = {
    "model": ("name_or_path", "max_seq_length", "revision", "trust_remote_code", "config_kwargs", "prompts",
              "prompt_columns"),
    "evaluator": ("name", "test_name", "inputs"),
    "mining": ("model", "output_format", "keep_pairs", "use_faiss"),
}  # fmt: skip
CALLED = {"model": "model builder", "evaluator": "evaluator class", "mining": "miner"}


# Spellings of the first release, when stembed's own choices hid inside library fields (deprecated):
# the trainer key (any value, also with + or ++) -> its key in the speed group.
MOVED_TO_SPEED = {
    "trainer.train_sampling_strategy": "speed.batches",
    "trainer.bf16": "speed.bf16",
    "trainer.batch_sampler": "speed.batch_sampler",
}
SPEED_REASON = "the speed group holds stembed's own speed choices: bf16, the batch sampler, the batches"


def call_key(key: str) -> str | None:
    """The current spelling of a first-release key that set a library argument at the top of a group
    (`mining.num_negatives` -> `mining.call.num_negatives`); None for a key spelt as it should be."""
    group, _, rest = key.partition(".")
    if group not in GROUP_KEYS or not rest or rest.partition(".")[0] in (*GROUP_KEYS[group], CALL):
        return None
    return f"{group}.{CALL}.{rest}"


def call_reason(group: str) -> str:
    """Why a key moved under `GROUP.call`, for the deprecation warning."""
    return (
        f"the {CALLED[group]}'s own arguments sit under {group}.{CALL}, apart from stembed's own {group} "
        f"keys: {', '.join(GROUP_KEYS[group])}"
    )


def current_spelling(arg: str) -> str:
    """Rewrite a deprecated override to its current spelling (with a warning); others pass through.

    trainer.bf16, trainer.batch_sampler and trainer.train_sampling_strategy move to the speed group;
    a library argument at the top of the model, evaluator or mining group moves under its `call`
    (`mining.num_negatives=3` -> `mining.call.num_negatives=3`).
    """
    key, sep, value = arg.partition("=")
    prefix = key[: len(key) - len(key.lstrip("+~"))]
    bare = key[len(prefix) :]
    if not sep and prefix != "~":
        return arg
    if bare in MOVED_TO_SPEED and sep:
        new, reason = f"{MOVED_TO_SPEED[bare]}={value}", SPEED_REASON  # the speed group lists every key
    elif (moved := call_key(bare)) is not None:
        new, reason = f"{prefix}{moved}{sep}{value}", call_reason(bare.partition(".")[0])
    else:
        return arg
    warn_deprecated(arg, new, reason)
    return new


def warn_deprecated(old: str, new: str, reason: str) -> None:
    print(
        f"stembed: warning: {old} is deprecated and will stop working in the next release; use {new} "
        f"({reason}).",
        file=sys.stderr,
    )
