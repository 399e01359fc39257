"""What the hardware computes natively, read from public sources only."""

from __future__ import annotations

import functools
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux /proc/cpuinfo flags of CPUs with bf16 matmuls


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX), from the kernel's CPU flags.

    Elsewhere (no /proc/cpuinfo: macOS, Windows) the answer is False: bf16 stays off unless asked for.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)
