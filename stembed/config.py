"""Where the shipped config groups live, for the installed package and for a source checkout."""

from __future__ import annotations

from pathlib import Path


def conf_dir() -> Path:
    """The `conf/` folder: inside the installed wheel, else at the root of the source tree."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "conf", package_dir.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"stembed's conf/ folder is missing next to {package_dir}; reinstall stembed.")
