"""Stop cleanly on Ctrl-C or pre-emption, and resume a stopped run into the same MLflow run.

The first SIGINT/SIGTERM during training lets the current step finish, saves a checkpoint and ends the
MLflow run KILLED; a second signal (or one outside training) stops at once. `stembed resume RUN_ID` (or
`stembed train +resume=RUN_ID`) re-runs the original command in the original run directory, continues
from the newest checkpoint and logs into the same MLflow run, so its metrics continue at the right steps.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stembed.errors import StembedError
from stembed.scale.run_dir import check_not_running
from stembed.tracking.record import RUN_DIR_TAG
from stembed.tracking.runs import client, get_run

if TYPE_CHECKING:
    from transformers import TrainerCallback

RESUME_KEY = "resume"
CHECKPOINT_TAG = "stembed.checkpoint"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class GracefulStop:
    """Signal handling for a training job: stop after the current step with a checkpoint."""

    def __init__(self) -> None:
        self.training = False
        self.signal: int | None = None

    def install(self) -> GracefulStop:
        """Handle SIGINT and SIGTERM (a cluster's pre-emption) in this process."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.training and self.signal is None:
            self.signal = signum
            print(
                f"\nstembed: {signal.Signals(signum).name}: saving a checkpoint after this step "
                "(signal again to stop at once)",
                file=sys.stderr,
            )
            return
        raise KeyboardInterrupt(f"signal {signum}")

    @property
    def requested(self) -> bool:
        """Whether a signal asked training to stop."""
        return self.signal is not None

    def trainer_callback(self) -> TrainerCallback:
        """Ends training at the next step boundary with a checkpoint once a signal arrived."""
        # Local: transformers loads huggingface_hub; `stembed train` imports this module before it
        # decides offline mode (stembed.hub).
        from transformers import TrainerCallback

        stop = self

        class StopOnSignal(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                stop.training = True

            def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                if stop.requested:
                    control.should_save = True
                    control.should_training_stop = True
                    control.should_evaluate = False
                return control

            def on_epoch_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                if stop.requested:  # no epoch-end evaluation or second save while stopping
                    control.should_evaluate = False
                    control.should_save = False
                return control

            def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
                stop.training = False

        return StopOnSignal()


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The checkpoint-N directory with the highest N, if any."""
    if not checkpoints_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in checkpoints_dir.iterdir() if (m := _CHECKPOINT.match(p.name))]
    return max(found)[1] if found else None


def resume_id(args: list[str]) -> str | None:
    """The run id of a `+resume=RUN_ID` argument, if any."""
    for arg in args:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == RESUME_KEY:
            return value
    return None


def resume_arguments(run_id: str, args: list[str]) -> list[str]:
    """The stopped run's own overrides, then the user's, then +resume and its run directory.

    The run is looked up where `tracking.uri` / `paths.output_root` in args (or $MLFLOW_TRACKING_URI)
    point, like `stembed train` would log it.
    """
    values = dict(a.lstrip("+").partition("=")[::2] for a in args if "=" in a)
    try:
        store = client(values.get("tracking.uri"), Path(values.get("paths.output_root", "outputs")))
    except StembedError as err:
        raise StembedError(f"resume={run_id}: no such run, {err}") from None
    run = get_run(store, run_id, "resume=", "tracking.uri=... (or paths.output_root=...)")
    if run.info.status == "FINISHED":
        raise StembedError(
            f"resume={run_id}: the run already FINISHED; there is nothing to resume. Start a new run with "
            f"{run.data.tags.get('stembed.command', 'stembed train ...')}."
        )
    run_dir = run.data.tags.get(RUN_DIR_TAG)
    if not run_dir:
        raise StembedError(f"resume={run_id}: the run records no run directory (tag {RUN_DIR_TAG}).")

    check_not_running(Path(run_dir), run_id)  # two processes must never train one run
    own = [a for a in json.loads(run.data.tags.get("stembed.overrides", "[]")) if resume_id([a]) is None]
    user = [a for a in args if resume_id([a]) is None]
    given = {a.lstrip("+~").partition("=")[0] for a in user}
    masked = [a for a in own if "***" in a and a.lstrip("+~").partition("=")[0] not in given]
    if masked:
        raise StembedError(
            f"resume={run_id}: the original command had credentials that MLflow stores masked ({masked}). "
            "Pass them again after the run id, or set them through environment variables."
        )
    return [*own, *user, f"+{RESUME_KEY}={run_id}", f"hydra.run.dir={run_dir}"]
