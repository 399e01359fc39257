"""Hydra's composition errors (unknown option, unknown key, bad override syntax) as stembed errors.

Before handing the command line to `hydra.main`, stembed composes it once with Hydra's public
Compose API (about 0.2 s). An error in the command line or the config then becomes one paragraph
naming the field, the value and the fix, with exit code 2, like every other input error; Hydra
itself would print its own report and exit 1. A sweep is checked with the first value of each swept
choice or range (interval and glob sweeps are left to the sweeper).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from stembed.config import conf_dir
from stembed.errors import EXIT_USAGE, StembedError, debug_requested, did_you_mean

# Hydra's flags: those that take a value, and those after which there is nothing to check.
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--experimental-rerun"}
NO_CHECK_FLAGS = {"--help", "-h", "--hydra-help", "--version", "--shell-completion", "-sc"}
OTHER_CONFIG_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}


def check_command_line(args: list[str]) -> None:
    """Compose the command line once; exit 2 with one paragraph if Hydra would reject it."""
    if debug_requested() or not NO_CHECK_FLAGS.isdisjoint(args) or not OTHER_CONFIG_FLAGS.isdisjoint(args):
        return
    overrides = _overrides(args)
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="stembed-train"):
            reduced = _first_of_sweeps(overrides)
            cfg = compose("train", overrides=reduced, return_hydra_config=True)
            # -m, or a config that asks for a sweep itself (+hparams_search=...: hydra.mode=MULTIRUN)
            multirun = "-m" in args or "--multirun" in args or cfg.hydra.mode == RunMode.MULTIRUN
            if not multirun and reduced != overrides:
                compose("train", overrides=overrides, return_hydra_config=True)  # Hydra's own error
        _check_writable(Path(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir))
    except Exception as err:
        message = explain(err, overrides)
        if message is None:
            return  # not about the input: hydra.main reports it as usual
        print(f"stembed: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _overrides(args: list[str]) -> list[str]:
    """The overrides among Hydra's command-line arguments (flags and their values left out)."""
    overrides, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in VALUE_FLAGS:
            skip = True
        elif not arg.startswith("-"):
            overrides.append(arg)
    return overrides


def _first_of_sweeps(overrides: list[str]) -> list[str]:
    """Each swept choice or range reduced to its first value; other sweeps left out."""
    parser = OverridesParser.create()
    reduced = []
    for arg in overrides:
        try:
            (override,) = parser.parse_overrides([arg])
        except HydraException:
            reduced.append(arg)  # compose reports the syntax error
            continue
        if not override.is_sweep_override():
            reduced.append(arg)
            continue
        try:
            reduced.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        except HydraException:
            continue  # interval(...) and glob(...): only the sweeper can enumerate them
    return reduced


def _check_writable(run_dir: Path) -> None:
    """The run directory's nearest existing parent must be a writable directory."""
    parent = run_dir
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        reason = "Not a directory" if parent.exists() and not parent.is_dir() else "Permission denied"
        raise OSError(13, reason, str(run_dir))


def explain(err: Exception, args: list[str]) -> str | None:
    """One paragraph for a composition error, or None for errors that are not about the input."""

    if isinstance(err, StembedError):
        return str(err)
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        return _missing_option(err.missing_cfg_file, list(err.options or []), args)
    if isinstance(err, OverrideParseException):
        return (
            f"{err.override}: not valid override syntax ({err.message.splitlines()[0]}). Write KEY=VALUE, "
            "quote values that contain brackets, commas or spaces (e.g. 'data.name=\"a, b\"'), and see "
            "https://hydra.cc/docs/advanced/override_grammar/basic/."
        )
    cause = err.__cause__
    if isinstance(cause, ConfigKeyError | ConfigAttributeError) and "Could not override" in str(err):
        return _unknown_key(cause, args)
    if isinstance(err, OSError) and err.filename:
        return (
            f"paths.output_root: cannot create the run directory {err.filename} ({err.strerror}). Set "
            "paths.output_root (or hydra.run.dir / hydra.sweep.dir) to a directory you can write to."
        )
    if isinstance(err, ConfigCompositionException):  # Hydra's own message already says what to do
        return " ".join(str(err).split())
    if isinstance(cause, OmegaConfBaseException) or isinstance(err, OmegaConfBaseException):
        return f"config: {str(err).splitlines()[0]} Fix the value on the command line or in the config file."
    return None


def _missing_option(missing: str, options: list[str], args: list[str]) -> str:
    """`loss=cosin` -> names the group, the value, the options and the closest one."""
    group, _, option = missing.rpartition("/")
    given = next((a for a in args if a.lstrip("+~").split("=", 1)[0] == group), f"{group}={option}")
    return (
        f"{given}: there is no '{option}' in the {group} group.{did_you_mean(option, options)} "
        f"Options: {', '.join(options)}. `stembed config list` shows every group."
    )


def _unknown_key(cause: Any, args: list[str]) -> str:
    """`trainer.learnig_rate=0.1` -> names the key, the closest existing key and the `+` escape."""
    full_key = str(cause.full_key)
    parent = cause.parent_node
    siblings = [str(k) for k in parent] if parent is not None and hasattr(parent, "keys") else []
    given = next((a for a in args if a.split("=", 1)[0] == full_key), full_key)
    section = full_key.rpartition(".")[0] or "the config"
    return (
        f"{given}: {section} has no key '{cause.key}'.{did_you_mean(str(cause.key), siblings)} Fix the name, "
        f"or add a new key with a leading '+': +{given}."
    )
