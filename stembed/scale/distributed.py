"""Data-parallel training under torchrun: which process logs, one run directory for all processes,
and the training arguments that make CPU processes train together.

`torchrun --nproc_per_node=N -m stembed train ...` starts N processes with RANK and WORLD_SIZE set.
Every process trains (DDP keeps their weights identical); only rank 0 opens the MLflow run, saves
the model and writes the card. torch is imported only when WORLD_SIZE > 1.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from typing import Any

RUN_DIR_KEYS = ("hydra.run.dir=", "hydra.sweep.dir=")


def world_size() -> int:
    """How many processes train together (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0: the process that logs to MLflow and writes the model."""
    return rank() == 0


def hydra_args(args: list[str]) -> list[str]:
    """Hydra arguments for this process: under torchrun, one run directory that every rank agrees on.

    Hydra's default directory is a timestamp, which two processes can compute a second apart. Rank 0
    picks it and shares it through torchrun's rendezvous store. The other ranks write nothing there
    (no .hydra/ copy, log to the console only): rank 0 owns the run directory.
    """
    if world_size() <= 1:
        return args
    extra: list[str] = []
    if not any(arg.startswith(RUN_DIR_KEYS) for arg in args):
        stamp = _shared_with_all_ranks("run_dir", f"{datetime.now():%Y-%m-%d/%H-%M-%S-%f}")
        extra += [
            f"hydra.run.dir=${{paths.output_root}}/runs/{stamp}",
            f"hydra.sweep.dir=${{paths.output_root}}/multirun/{stamp}",
        ]
    if not is_main_process():
        extra += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    return [*args, *extra]


def training_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """SentenceTransformerTrainingArguments values adjusted for torchrun (called before the model loads).

    On GPUs each process is pinned to its own device (LOCAL_RANK), so the model loads and the
    evaluators run there and not all on GPU 0. On CPU, transformers trains data-parallel only with
    `use_cpu=True` (and the gloo backend); without them every process trains alone on all the data.
    Values set by the user are kept.
    """
    if world_size() <= 1:
        return values
    import torch  # local: `stembed train` imports this module before it decides offline mode; torch is slow

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        return values
    return {"use_cpu": True, "ddp_backend": "gloo", **values}


def run_tags(args: Any) -> dict[str, str]:
    """Tags recording how the run was parallelised, read from the trainer's own view of it."""
    batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    return {
        "stembed.world_size": str(args.world_size),
        "stembed.parallel_mode": str(args.parallel_mode.value),
        "stembed.effective_batch_size": str(batch),
    }


def _shared_with_all_ranks(name: str, value: str) -> str:
    """Rank 0's `value`, given to every rank through the store torchrun's agent hosts."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        print(
            "stembed: WORLD_SIZE > 1 but not started by torchrun; each process picks its own run directory. "
            "Pass the same hydra.run.dir=DIR to every process to keep one.",
            file=sys.stderr,
        )
        return value
    from torch.distributed import TCPStore  # local: torch only under torchrun (see above)

    store = TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        is_master=False,
        timeout=timedelta(minutes=5),
    )
    key = f"stembed/{name}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if is_main_process():
        store.set(key, value)
        return value
    return store.get(key).decode()
