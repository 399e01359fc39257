"""`stembed config list | show | validate`: the shipped config groups, without training anything."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stembed.components.kinds import check_fits
from stembed.components.model import configured_kind
from stembed.config import compose_train, conf_dir
from stembed.errors import StembedError, did_you_mean
from stembed.spellings import CALL, CALLED, GROUP_KEYS

HIDDEN_GROUPS = {"hydra"}


def groups() -> dict[str, list[str]]:
    """{group: [options]} for every config group shipped in conf/."""
    root = conf_dir()
    found = {}
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in HIDDEN_GROUPS):
        found[directory.name] = sorted(f.stem for f in directory.glob("*.yaml"))
    # Launchers shipped by stembed; Hydra's plugins add joblib, submitit_local, submitit_slurm.
    found["hydra/launcher"] = sorted(f.stem for f in (root / "hydra" / "launcher").glob("*.yaml"))
    return found


def config_file(name: str) -> Path:
    """The YAML file for GROUP/OPTION (or `train`), with a suggestion when it does not exist."""
    path = conf_dir() / f"{name.removesuffix('.yaml')}.yaml"
    if path.is_file():
        return path
    known = ["train"] + [f"{group}/{option}" for group, options in groups().items() for option in options]
    raise StembedError(
        f"config {name}: no such config.{did_you_mean(name, known)} `stembed config list` shows the groups "
        "and options; name one as GROUP/OPTION, e.g. loss/mnrl."
    )


@dataclass
class Check:
    """One preset's validation result."""

    preset: str
    problems: list[str]


def validate(presets: list[str] | None = None) -> list[Check]:
    """Compose each experiment preset and check its targets, arguments and trainer keys, loading no model."""
    names = presets or groups()["experiment"]
    results = []
    for name in names:
        try:
            cfg = compose_train([f"+experiment={name}"], "{error}")
        except Exception as err:  # Hydra raises several types for a broken preset
            results.append(Check(name, [f"does not compose: {err}"]))
            continue
        results.append(Check(name, _problems(cfg)))
    return results


def _problems(cfg: Any) -> list[str]:
    from omegaconf import OmegaConf

    problems = target_problems(cfg) + _trainer_problems(OmegaConf.to_container(cfg.trainer, resolve=False))
    try:
        check_kind(cfg)
    except StembedError as err:
        problems.append(str(err))
    return problems


def check_kind(cfg: Any) -> None:
    """A loss or evaluator of another model kind fails here, before data or model load (a builder's
    kind, and data=multi's per-set losses, are checked once the model is loaded)."""
    kind = configured_kind(cfg.model) if cfg.get("model") else None
    if kind is None:
        return
    check_fits(kind, "loss", (cfg.get("loss") or {}).get("_target_"))
    check_fits(kind, "evaluator.call", ((cfg.get("evaluator") or {}).get(CALL) or {}).get("_target_"))


def target_problems(cfg: Any) -> list[str]:
    """Targets of loss, data and the model, evaluator and mining calls that do not import or get keys
    they do not take; keys at the top of the model, evaluator and mining groups that stembed does not read."""
    from omegaconf import OmegaConf

    problems = []
    for group in ("loss", "data", *GROUP_KEYS):
        node = cfg.get(group)
        if not node:
            continue
        spec = OmegaConf.to_container(node, resolve=False)
        if group not in GROUP_KEYS:
            problems += _target_problems(group, spec) if spec.get("_target_") else []
            continue
        for key, value in spec.items():
            if key not in (*GROUP_KEYS[group], CALL):
                problems.append(
                    f"{group}.{key} is not an argument of stembed's {group} group (its keys: "
                    f"{', '.join(GROUP_KEYS[group])}, {CALL}); the {CALLED[group]}'s own arguments go under "
                    f"{group}.{CALL}.{key}"
                )
            elif _is_target(value):  # the call, and stembed's own keys that are built (evaluator.inputs)
                problems += _target_problems(f"{group}.{key}", value)
            elif key == CALL and isinstance(value, dict) and value and "_target_" not in value:
                problems.append(
                    f"{group}.{CALL} has arguments ({', '.join(map(str, value))}) but no "
                    f"{group}.{CALL}._target_ to pass them to; name the {CALLED[group]} with "
                    f"+{group}.{CALL}._target_=..."
                )
    return problems


def _is_target(value: Any) -> bool:
    return isinstance(value, dict) and bool(value.get("_target_"))


def _target_problems(field: str, spec: dict[str, Any]) -> list[str]:
    """The target imports, and its keys are arguments it accepts (nested targets too)."""
    from hydra.utils import get_object

    try:
        target = get_object(spec["_target_"])
    except Exception as err:
        return [f"{field}._target_={spec['_target_']} does not import ({' '.join(str(err).split())})"]
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    problems = []
    for key, value in spec.items():
        if key.startswith("_"):  # Hydra's own keys: _target_, _partial_, _recursive_, _convert_, _args_
            continue
        if parameters and not takes_any and key not in parameters:
            hint = did_you_mean(key, parameters).strip()  # "Did you mean 'x'?"
            problems.append(
                f"{field}.{key} is not an argument of {spec['_target_']}"
                + (f" ({hint[0].lower()}{hint[1:]})" if hint else "")
            )
        if _is_target(value):
            problems += _target_problems(f"{field}.{key}", value)
    return problems


def _trainer_problems(trainer: dict[str, Any]) -> list[str]:
    from sentence_transformers import SentenceTransformerTrainingArguments

    known = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    return [
        f"trainer.{key} is not a SentenceTransformerTrainingArguments field.{did_you_mean(key, known)}"
        for key in trainer
        if key not in known
    ]
