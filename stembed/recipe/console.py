"""A quiet console for training: progress bars, each warning once, and the summary.

Everything else (library INFO lines, the trainer's logs dicts) goes to the run's train.log, which
Hydra's job logging writes (conf/hydra/default.yaml). `stembed train --verbose` or
`hydra.verbose=true` brings it back to the console.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

VERBOSE_ENV = "STEMBED_VERBOSE"
# Libraries that log through a stderr handler of their own: routed through the root logger instead,
# or each of their warnings would print twice (their handler, then Hydra's) and never reach train.log.
OWN_HANDLER_LIBRARIES = ("huggingface_hub", "datasets", "transformers", "mlflow")
log = logging.getLogger("stembed.trainer")


def verbose_requested(hydra_verbose: Any) -> bool:
    return os.environ.get(VERBOSE_ENV) == "1" or bool(hydra_verbose)


def route_library_logs(verbose: bool) -> None:
    """Send the libraries' log records through the root logger: the console (warnings) and train.log."""
    for name in OWN_HANDLER_LIBRARIES:
        importlib.import_module(name)  # each installs its handler at import: import first, then reroute
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    if verbose:
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # the console (a FileHandler is a subclass)
                handler.setLevel(logging.INFO)


def _log_to_file(state: Any, logs: Any) -> None:
    if state.is_world_process_zero and logs:
        log.info("step %s: %s", state.global_step, logs)


class QuietProgress(ProgressCallback):
    """The trainer's progress bars, minus the printed dict per logging step (MLflow and train.log keep it)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        _log_to_file(state, logs)


class LogsToTrainLog(TrainerCallback):
    """No bars (trainer.disable_tqdm=true): the logs dicts go to train.log, not to the console."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        _log_to_file(state, logs)


def quiet_progress(trainer: Any, verbose: bool) -> None:
    """Swap the trainer's printing callbacks for quiet ones (with --verbose, keep them)."""
    if verbose:
        return
    had_bars = trainer.pop_callback(ProgressCallback) is not None
    trainer.pop_callback(PrinterCallback)  # disable_tqdm=true prints every logs dict instead
    trainer.add_callback(QuietProgress() if had_bars else LogsToTrainLog())
