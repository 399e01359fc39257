"""Checks on the composed config that need no model and no data: they fail a bad run in seconds."""

from __future__ import annotations

from typing import Any

from stembed.components.instantiate import evaluator_disabled
from stembed.errors import StembedError
from stembed.recipe.configs import CALL, check_kind, target_problems
from stembed.speed import BATCHES


def check_config(cfg: Any, multirun: bool) -> None:
    """Values that are the wrong type or contradict each other, before anything heavy loads."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise StembedError(f"seed={cfg.seed}: must be a whole number, e.g. seed=42.")
    if not 0 <= cfg.seed <= MAX_SEED:
        raise StembedError(f"seed={cfg.seed}: must be between 0 and {MAX_SEED} (numpy's range): seed=42.")
    trainer = cfg.trainer
    check_model_values(cfg.get("model") or {})
    if cfg.speed.batches not in BATCHES:
        raise StembedError(
            f"speed.batches={cfg.speed.batches}: stembed knows {', '.join(BATCHES)}. auto picks "
            "split_by_length or group_by_length for the loss; random keeps the library's batches as they are."
        )
    if cfg.speed.get("bf16") is True and trainer.get("fp16"):
        raise StembedError(
            "speed.bf16=true and trainer.fp16=true: pick one mixed-precision mode "
            "(speed.bf16=true on CPUs and GPUs that support it, else trainer.fp16=true on GPUs)."
        )
    if trainer.get("load_best_model_at_end") and str(trainer.get("eval_strategy")) == "no":
        raise StembedError(
            "trainer.load_best_model_at_end=true with trainer.eval_strategy=no: there is no evaluation to "
            "pick the best model by. Set trainer.eval_strategy=epoch (or steps), or drop "
            "load_best_model_at_end."
        )
    if cfg.get("optimized_metric") and evaluator_disabled((cfg.get("evaluator") or {}).get(CALL)):
        raise StembedError(
            f"optimized_metric={cfg.optimized_metric} with evaluator=none: no evaluator reports it. "
            "Pick an evaluator (evaluator=similarity|binary|retrieval|label_retrieval) or drop "
            "optimized_metric."
        )

    if problems := target_problems(cfg):
        raise StembedError(
            f"{'; '.join(problems)}. Name a class or function that imports in this environment, with only "
            "keys it takes as arguments (`stembed config validate` checks the shipped presets)."
        )
    check_kind(cfg)
    if cfg.get("resume") and multirun:
        raise StembedError(
            f"resume={cfg.resume} with -m: a sweep cannot resume one run. Resume it alone: "
            f"stembed resume {cfg.resume}."
        )


MAX_SEED = 2**32 - 1


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_trainer_ranges(trainer: Any) -> None:
    """Values of the right type that make training a no-op, fail mid-run, or are silently ignored."""
    lr = trainer.get("learning_rate")
    if _number(lr) and lr <= 0:
        what = "nothing would be learned (the model is the base model)" if lr == 0 else "it must be positive"
        raise StembedError(f"trainer.learning_rate={lr}: {what}. Use e.g. trainer.learning_rate=2e-5.")
    accumulation = trainer.get("gradient_accumulation_steps")
    if _number(accumulation) and accumulation < 1:
        raise StembedError(
            f"trainer.gradient_accumulation_steps={accumulation}: must be 1 or more (1 = no accumulation)."
        )
    max_steps, epochs = trainer.get("max_steps"), trainer.get("num_train_epochs")
    if _number(max_steps) and max_steps <= 0 and max_steps != -1:
        raise StembedError(
            f"trainer.max_steps={max_steps}: give a positive number of steps, or -1 to train "
            "trainer.num_train_epochs epochs."
        )
    if _number(epochs) and epochs <= 0 and not (_number(max_steps) and max_steps > 0):
        raise StembedError(
            f"trainer.num_train_epochs={epochs} with trainer.max_steps={max_steps}: that is 0 training "
            "steps, and the base model would be logged as trained. Set trainer.num_train_epochs to 1 or "
            "more, or trainer.max_steps to a positive number."
        )
    workers = trainer.get("dataloader_num_workers")
    if _number(workers) and (workers < 0 or workers != int(workers)):
        raise StembedError(
            f"trainer.dataloader_num_workers={workers}: must be 0 (load batches in the training process) "
            "or a positive number of worker processes, e.g. trainer.dataloader_num_workers=2."
        )
    for key in ("seed", "data_seed"):
        value = trainer.get(key)
        if _number(value) and not (value == int(value) and 0 <= value <= MAX_SEED):
            raise StembedError(
                f"trainer.{key}={value}: must be a whole number between 0 and {MAX_SEED} (numpy's range); "
                f"by default it follows the top-level seed (seed=42), so drop the trainer.{key} override."
            )
    for key in ("warmup_ratio", "warmup_steps"):
        value = trainer.get(key)
        if _number(value) and (value < 0 or (key == "warmup_ratio" and value > 1)):
            share = "a share of all steps between 0 and 1" if key == "warmup_ratio" else "0 or more"
            raise StembedError(f"trainer.{key}={value}: must be {share} (e.g. trainer.warmup_steps=0.1).")


def check_model_values(model: Any) -> None:
    """model.max_seq_length must allow at least one token (a builder like model=tiny takes it too)."""
    length = model.get("max_seq_length") if hasattr(model, "get") else None
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length <= 0):
        raise StembedError(
            f"model.max_seq_length={length}: must be a positive whole number of tokens (e.g. 256), or null "
            "for the model's own limit."
        )


def check_trainer_value(key: str, value: Any, field_type: Any) -> None:
    """A trainer value of the wrong type (`trainer.learning_rate=fast`) fails here, naming the key."""
    if key.endswith("batch_size") and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise StembedError(f"trainer.{key}={value}: must be a positive whole number, e.g. trainer.{key}=16.")
    expected = {bool: ("true or false", "true"), int: ("a whole number", "10"), float: ("a number", "0.1")}
    if value is None or field_type not in expected:
        return
    is_bool = isinstance(value, bool)
    ok = {
        bool: is_bool,
        int: isinstance(value, int) and not is_bool,
        float: isinstance(value, int | float) and not is_bool,
    }[field_type]
    if not ok:
        kind, example = expected[field_type]
        raise StembedError(f"trainer.{key}={value}: must be {kind}, e.g. trainer.{key}={example}.")
