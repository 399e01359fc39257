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
from omegaconf import OmegaConf, open_dict

from stembed.config import conf_dir
from stembed.errors import EXIT_INTERRUPTED, EXIT_USAGE, StembedError, debug_requested
from stembed.hub import decide_offline
from stembed.recipe import hydra_errors
from stembed.recipe.checks import check_config
from stembed.scale.distributed import hydra_args
from stembed.scale.resume import GracefulStop, resume_arguments, resume_id
from stembed.scale.run_dir import guarded_run_dir
from stembed.scale.sweep import run_job
from stembed.spellings import (
    CALL,
    GROUP_KEYS,
    MOVED_TO_SPEED,
    SPEED_REASON,
    call_key,
    call_reason,
    current_spelling,
    warn_deprecated,
)
from stembed.tracking.redaction import redact_console, secret_values

if TYPE_CHECKING:
    from omegaconf import DictConfig


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
    args = [current_spelling(arg) for arg in args]
    hydra_errors.check_command_line(args)
    sys.argv = ["stembed-train", *hydra_args(args)]  # under torchrun: one run directory for all ranks
    hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="train")(job)()


def _current_config(cfg: DictConfig) -> None:
    """The same rewrites in a composed config (a user's own config file), each with a warning."""
    with open_dict(cfg):
        for old, new in MOVED_TO_SPEED.items():
            trainer_key, speed_key = old.partition(".")[2], new.partition(".")[2]
            if trainer_key in cfg.trainer:
                value = cfg.trainer.pop(trainer_key)
                cfg.speed[speed_key] = value  # the trainer's value won over the speed group's before
                warn_deprecated(f"{old}: {value}", f"{new}: {value}", SPEED_REASON)
        for group in GROUP_KEYS:
            node = cfg.get(group)
            for key in [k for k in node or {} if call_key(f"{group}.{k}") is not None]:
                if node.get(CALL) is None:
                    node[CALL] = {}
                node[CALL][key] = OmegaConf.to_container(node, resolve=False)[key]  # interpolations stay
                del node[key]
                warn_deprecated(f"{group}.{key}", f"{group}.{CALL}.{key}", call_reason(group))


def job(cfg: DictConfig) -> float | None:
    """One Hydra job: check the config, then train; input errors become one paragraph and exit code 2."""
    stop = GracefulStop().install()  # Ctrl-C and a cluster's pre-emption: checkpoint, run KILLED
    try:
        decide_offline()  # before the recipe imports the hub libraries (a sweep worker decides too)
        # Lock, no overwriting an earlier run's model, credentials scrubbed from console and run directory.
        with guarded_run_dir(cfg) as secrets:
            _current_config(cfg)  # a user's own config file in the first release's spellings
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
