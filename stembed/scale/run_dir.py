"""The run directory of a training job: one live process at a time, never over a finished model, and
no credential left in any file once the job ends.

The training process holds `<run dir>/.stembed.lock` (an OS file lock: the kernel releases it when the
process dies, even by kill -9, so a crashed run never blocks its own resume). `stembed resume` and a
second `stembed train` into the same directory find it held and stop with exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from stembed.errors import StembedError
from stembed.scale.distributed import is_main_process
from stembed.tracking.redaction import redact_console, scrub_directory, secret_values

LOCK_NAME = ".stembed.lock"
FINISHED_OUTPUTS = ("model", "model.partial", "checkpoints")


def lock_path(run_dir: Path) -> Path:
    """The lock file the training process holds while it runs."""
    return run_dir / LOCK_NAME


def held_by_live_process(run_dir: Path) -> bool:
    """Whether a live process holds the run directory's lock (a lock left by a dead one is free)."""

    lock = lock_path(run_dir)
    if not lock.is_file():
        return False
    probe = FileLock(str(lock), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:  # a read-only directory: nothing can be training there
        return False
    probe.release()
    return False


def check_not_running(run_dir: Path, run_id: str) -> None:
    """For `stembed resume`: refuse a run whose training process is still alive."""
    if held_by_live_process(run_dir):
        raise StembedError(
            f"resume={run_id}: the run is still training (a live process holds {lock_path(run_dir)}). "
            "Wait for it to finish, or stop it first (Ctrl-C or kill; SIGTERM saves a checkpoint), then "
            f"run `stembed resume {run_id}` again."
        )


def _claim(run_dir: Path) -> Any:
    """Take the run directory's lock, or fail naming the process that has it."""

    lock = FileLock(str(lock_path(run_dir)), timeout=0)
    try:
        lock.acquire()
    except Timeout as err:
        raise StembedError(
            f"hydra.run.dir={run_dir}: another stembed process is training in this run directory now (it "
            f"holds {lock_path(run_dir)}). Wait for it to finish or stop it, or leave hydra.run.dir unset "
            "so this run gets a directory of its own."
        ) from err
    return lock


def check_no_earlier_training(run_dir: Path, resuming: bool) -> None:
    """A new run never writes over an earlier run's model or checkpoints (only a resume continues them)."""
    if resuming:
        return
    found = [name for name in FINISHED_OUTPUTS if (run_dir / name).exists()]
    if found:
        raise StembedError(
            f"hydra.run.dir={run_dir}: the directory already holds an earlier run's {' and '.join(found)}; "
            "training here again would overwrite it. Leave hydra.run.dir unset (every run gets a new "
            "directory), pick a new one, or continue the earlier run with `stembed resume RUN_ID`."
        )


def _secrets(cfg: Any, overrides: list[str]) -> set[str]:

    try:
        config = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that does not resolve fails later, with its own message
        config = OmegaConf.to_container(cfg, resolve=False)
    return secret_values(config, overrides=overrides)  # type: ignore[arg-type]


@contextmanager
def guarded_run_dir(cfg: Any) -> Iterator[set[str]]:
    """Around one Hydra job: mask credentials on the console, in Hydra's .hydra/*.yaml and, when the job
    ends, in every file of the run directory (card, checkpoints, logs); hold the run directory's lock.

    Yields the credential values found (from the environment, the config and the command line).
    """

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    secrets = _secrets(cfg, list(hydra_cfg.overrides.task))
    redact_console(secrets)
    if not is_main_process():  # rank 0 owns the run directory
        yield secrets
        return
    if hydra_cfg.output_subdir:
        scrub_directory(run_dir / str(hydra_cfg.output_subdir), secrets)  # Hydra wrote them before the job
    lock = _claim(run_dir)
    try:
        check_no_earlier_training(run_dir, resuming=bool(cfg.get("resume")))
        yield secrets
    finally:
        scrub_directory(run_dir, secrets)
        lock.release()
