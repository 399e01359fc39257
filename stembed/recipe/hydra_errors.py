"""Hydra's composition errors (unknown option, unknown key, bad override syntax) as stembed errors.

Hydra prints these itself and exits 1. stembed wraps Hydra's reporting function so that an error in the
command line or config is one paragraph naming the field, the value and the fix, with exit code 2, like
every other input error. Errors raised inside a running job keep Hydra's own report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from stembed.errors import EXIT_USAGE, StembedError, debug_requested, did_you_mean

# Set by stembed.recipe.app.job when the task function starts: later errors are the job's, not the config's.
job_started = False
_args: list[str] = []  # the command line being composed, to quote the user's own override back


def install(args: list[str]) -> None:
    """Route Hydra's error reporting through `explain` for this process (hydra-core 1.3)."""
    import hydra._internal.hydra as hydra_module
    import hydra._internal.utils as utils_module

    global job_started, _args
    job_started, _args = False, list(args)
    original = utils_module.run_and_report
    if getattr(original, "stembed", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        try:
            return func()
        except Exception as err:
            message = None if job_started or debug_requested() else explain(err, _args)
            if message is None:
                return original(_reraise(err))
            print(f"stembed: error: {message}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    run_and_report.stembed = True  # type: ignore[attr-defined]
    utils_module.run_and_report = run_and_report
    hydra_module.run_and_report = run_and_report


def _reraise(err: Exception) -> Callable[[], Any]:
    def again() -> Any:
        raise err

    return again


def explain(err: Exception, args: list[str]) -> str | None:
    """One paragraph for a composition error, or None for errors that are not about the input."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

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
