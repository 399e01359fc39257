"""The evaluators of the configured data (one set or data=multi), with the prompts each side is encoded with.

Training (recipe/inputs.py), `stembed eval` and `stembed ship` build them the same way here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from stembed.components.evaluators import build_evaluators
from stembed.components.instantiate import instantiate
from stembed.components.kinds import check_fits, kind_of
from stembed.components.prompts import apply_to_evaluator, configured, effective, set_on_model, side_prompts
from stembed.data.loading import text_columns
from stembed.data.multi import is_multi, sequential_evaluator

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def set_evaluator_cfg(cfg: Any, data: Any, name: str) -> Any:
    """data.sets.NAME.evaluator (default: the run's evaluator), named after the set."""

    own = data.evaluators.get(name) or cfg.evaluator  # resolved here: merged copies lose the root
    return OmegaConf.merge(
        OmegaConf.to_container(own, resolve=True) if OmegaConf.is_config(own) else own,
        {"name": name, "test_name": f"{name}_test"},
    )


def evaluators_with_prompts(evaluator_cfg: Any, data: Any, prompts: tuple[str, str]) -> list[Any]:
    """[eval split, test split] evaluators of one set, with its (query, corpus) prompts."""

    evaluators = build_evaluators(evaluator_cfg, data)
    for evaluator in evaluators:
        apply_to_evaluator(evaluator, *prompts)
    return evaluators


def eval_evaluators(cfg: Any, model: SentenceTransformer) -> tuple[list[Any], Any]:
    """`stembed eval`: the evaluators of `data`/`evaluator` with the prompts the model was trained with.

    The prompts are model.prompts when the command gives them, else the ones saved with the model.
    """

    prompts, prompt_columns = configured(cfg.model)
    check_fits(kind_of(model), "evaluator.call", (cfg.evaluator.get("call") or {}).get("_target_"))
    set_on_model(model, prompts)  # model.prompts on the command line win over the saved ones
    prompts = effective(model, prompt_columns)
    data = instantiate(cfg.data, "data")
    if not is_multi(data):
        sides = side_prompts(text_columns(data.train), prompts, prompt_columns)
        return evaluators_with_prompts(cfg.evaluator, data, sides), data
    per_set = {
        name: evaluators_with_prompts(
            set_evaluator_cfg(cfg, data, name),
            part,
            side_prompts(text_columns(part.train), prompts, prompt_columns),
        )
        for name, part in data.sets.items()
    }
    evaluators = [
        sequential_evaluator({n: e[0] for n, e in per_set.items()}, data.primary),
        sequential_evaluator({n: e[1] for n, e in per_set.items()}, data.primary),
    ]
    return evaluators, data
