"""The Hydra wiring of `stembed train`: arguments in, one job per run (or per sweep job), exit codes out.

`stembed train ARGS` calls `run_hydra(ARGS)`, so Hydra sees the arguments untouched (-m, --cfg,
--help, +experiment=..., hydra/launcher=...). The recipe itself is stembed/recipe/train.py.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from stembed.config import conf_dir
from stembed.errors import EXIT_INTERRUPTED, EXIT_USAGE, StembedError, debug_requested
from stembed.hub import decide_offline
from stembed.recipe import hydra_errors
from stembed.recipe.checks import check_config
from stembed.scale.distributed import hydra_args
from stembed.scale.resume import GracefulStop, resume_arguments, resume_id
from stembed.scale.run_dir import guarded_run_dir
from stembed.scale.sweep import run_job
from stembed.tracking.redaction import redact_console, secret_values

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Spellings of the first release, when stembed's own choices hid inside library fields (deprecated).
MOVED_TO_SPEED = {
    "trainer.train_sampling_strategy": "speed.batches",
    "trainer.bf16=auto": "speed.bf16",
    "trainer.batch_sampler=auto": "speed.batch_sampler",
}
LIBRARY_FIELDS_ADDED = ("trainer.bf16", "trainer.batch_sampler")  # no longer listed in the trainer group


def run_hydra(args: list[str]) -> None:
    """Run the Hydra app `stembed train` with these command-line arguments.

    `+resume=RUN_ID` first expands to that run's own overrides and run directory (stembed.scale.resume).
    """
    redact_console(secret_values(overrides=args))  # credentials never reach the console
    if (run_id := resume_id(args)) is not None:
        try:
            args = resume_arguments(run_id, args)
        except StembedError as err:
            exit_with(err)
    args = [_current_spelling(arg) for arg in args]
    hydra_errors.check_command_line(args)
    sys.argv = ["stembed-train", *hydra_args(args)]  # under torchrun: one run directory for all ranks
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")(job)()


def _current_spelling(arg: str) -> str:
    """Rewrite a deprecated override to its `speed` group spelling (with a warning); others pass through."""
    key, sep, value = arg.partition("=")
    if not sep or key.startswith(("+", "~")):
        return arg
    new_key = MOVED_TO_SPEED.get(key) or MOVED_TO_SPEED.get(f"{key}={value}")
    if new_key:
        print(
            f"stembed: warning: {arg} is deprecated and will stop working in the next release; "
            f"use {new_key}={value} (the speed group holds stembed's own speed choices).",
            file=sys.stderr,
        )
        return f"{new_key}={value}"
    return f"++{arg}" if key in LIBRARY_FIELDS_ADDED else arg  # a library field: set it in the trainer


def job(cfg: DictConfig) -> float | None:
    """One Hydra job: check the config, then train; input errors become one paragraph and exit code 2."""
    stop = GracefulStop().install()  # Ctrl-C and a cluster's pre-emption: checkpoint, run KILLED
    try:
        decide_offline()  # before the recipe imports the hub libraries (a sweep worker decides too)
        # Lock, no overwriting an earlier run's model, credentials scrubbed from console and run directory.
        with guarded_run_dir(cfg) as secrets:
            check_config(cfg, multirun=HydraConfig.get().mode == RunMode.MULTIRUN)  # fails fast, no torch
            # Local: the recipe imports the hub libraries, which read HF_HUB_OFFLINE once (decided above).
            from stembed.recipe.train import train

            # In a sweep, a failing job is recorded FAILED and the sweep goes on.
            return run_job(functools.partial(train, stop=stop, secrets=secrets), cfg)
    except KeyboardInterrupt:
        print("\nstembed: interrupted; the MLflow run (if one was open) ended KILLED.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except StembedError as err:
        exit_with(err)


def exit_with(err: StembedError) -> NoReturn:
    """Print an input error as one paragraph and exit 2 (re-raised with --debug)."""
    if debug_requested():
        raise err
    print(f"\nstembed: error: {err}\n", file=sys.stderr)
    sys.exit(EXIT_USAGE)
