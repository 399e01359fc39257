"""The one place stembed turns `_target_` configs into objects (Hydra's instantiate)."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate

from stembed.errors import StembedError


def instantiate(cfg: Any, field_name: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with a clear error naming the config field when the target fails."""
    try:
        return hydra_instantiate(cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, StembedError):
            raise cause from None
        target = cfg.get("_target_") if hasattr(cfg, "get") else None
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else repr(cause)
        raise StembedError(
            f"{field_name}._target_={target}: could not build it ({reason}). Check that the class or "
            f"function exists and that the other {field_name}.* keys are its arguments."
        ) from err


def evaluator_disabled(evaluator: Any) -> bool:
    """evaluator=none: an empty group, or `_target_: null` under an experiment's evaluator keys."""
    return not evaluator or ("_target_" in evaluator and evaluator["_target_"] is None)
