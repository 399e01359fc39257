"""Checks on the composed config that need no model and no data: they fail a bad run in seconds."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from stembed.errors import StembedError
from stembed.speed import BATCHES


def check_config(cfg: Any, multirun: bool) -> None:
    """Values that are the wrong type or contradict each other, before anything heavy loads."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise StembedError(f"seed={cfg.seed}: must be a whole number, e.g. seed=42.")
    trainer = cfg.trainer
    if cfg.speed.batches not in BATCHES:
        raise StembedError(
            f"speed.batches={cfg.speed.batches}: stembed knows {', '.join(BATCHES)}. auto picks "
            "split_by_length or group_by_length for the loss; random keeps the library's batches as they are."
        )
    bf16_key = "trainer.bf16" if "bf16" in trainer else "speed.bf16"
    if OmegaConf.select(cfg, bf16_key) is True and trainer.get("fp16"):
        raise StembedError(
            f"{bf16_key}=true and trainer.fp16=true: pick one mixed-precision mode "
            f"({bf16_key}=true on CPUs and GPUs that support it, else trainer.fp16=true on GPUs)."
        )
    if trainer.get("load_best_model_at_end") and str(trainer.get("eval_strategy")) == "no":
        raise StembedError(
            "trainer.load_best_model_at_end=true with trainer.eval_strategy=no: there is no evaluation to "
            "pick the best model by. Set trainer.eval_strategy=epoch (or steps), or drop "
            "load_best_model_at_end."
        )
    if cfg.get("optimized_metric") and evaluator_disabled(cfg.get("evaluator")):
        raise StembedError(
            f"optimized_metric={cfg.optimized_metric} with evaluator=none: no evaluator reports it. "
            "Pick an evaluator (evaluator=similarity|binary|retrieval|label_retrieval) or drop "
            "optimized_metric."
        )
    from stembed.recipe.configs import target_problems

    if problems := target_problems(cfg):
        raise StembedError(
            f"{'; '.join(problems)}. Name a class or function that imports in this environment, with only "
            "keys it takes as arguments (`stembed config validate` checks the shipped presets)."
        )
    if cfg.get("resume") and multirun:
        raise StembedError(
            f"resume={cfg.resume} with -m: a sweep cannot resume one run. Resume it alone: "
            f"stembed resume {cfg.resume}."
        )


def evaluator_disabled(evaluator: Any) -> bool:
    """evaluator=none: an empty group, or `_target_: null` under an experiment's evaluator keys."""
    return not evaluator or ("_target_" in evaluator and evaluator["_target_"] is None)


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
