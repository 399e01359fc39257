"""`stembed config list | show | validate`: the shipped config groups, without training anything."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stembed.components.prompts import STEMBED_MODEL_KEYS
from stembed.config import compose_train, conf_dir
from stembed.errors import StembedError, did_you_mean

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

    return target_problems(cfg) + _trainer_problems(OmegaConf.to_container(cfg.trainer, resolve=False))


def target_problems(cfg: Any) -> list[str]:
    """Targets of loss, evaluator, data and model that do not import or get keys they do not take."""
    from omegaconf import OmegaConf

    problems = []
    for group in ("loss", "evaluator", "data", "model"):
        node = cfg.get(group)
        if node and node.get("_target_"):
            problems += _target_problems(group, OmegaConf.to_container(node, resolve=False))
    return problems


def _target_problems(field: str, spec: dict[str, Any]) -> list[str]:
    """The target imports, and its keys are arguments it accepts (nested targets too)."""
    from hydra.utils import get_object

    try:
        target = get_object(spec["_target_"])
    except Exception as err:
        return [f"{field}._target_={spec['_target_']} does not import ({' '.join(str(err).split())})"]
    problems = []

    ignored = {"inputs", *(STEMBED_MODEL_KEYS if field == "model" else ())}  # read by stembed itself
    keys = {k: v for k, v in spec.items() if not k.startswith("_") and k not in ignored}
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in keys.items():
        if parameters and not takes_any and key not in parameters and key != "test_name":
            problems.append(f"{field}.{key} is not an argument of {spec['_target_']}")
        if isinstance(value, dict) and "_target_" in value:
            problems += _target_problems(f"{field}.{key}", value)
    if isinstance(spec.get("inputs"), dict):
        problems += _target_problems(f"{field}.inputs", spec["inputs"])
    return problems


def _trainer_problems(trainer: dict[str, Any]) -> list[str]:
    from sentence_transformers import SentenceTransformerTrainingArguments

    known = {f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init}
    return [
        f"trainer.{key} is not a SentenceTransformerTrainingArguments field.{did_you_mean(key, known)}"
        for key in trainer
        if key not in known
    ]
