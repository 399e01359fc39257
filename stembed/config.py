"""Where the shipped config groups live (installed package or source checkout), and train.yaml composed
for the commands that launch no run (`eval`, `mine`, `ship`, `config validate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stembed.errors import StembedError
from stembed.spellings import current_spelling


def conf_dir() -> Path:
    """The `conf/` folder: inside the installed wheel, else at the root of the source tree."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "conf", package_dir.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"stembed's conf/ folder is missing next to {package_dir}; reinstall stembed.")


def compose_train(overrides: list[str], on_error: str = "overrides {overrides}: {error}") -> Any:
    """train.yaml with these overrides, by Hydra's Compose API (which has no multirun or launchers:
    `stembed train` goes through hydra.main). A rejected override is a StembedError worded by on_error.
    """
    # Local: `stembed --help` imports this module and must not pay for Hydra.
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    overrides = [current_spelling(override) for override in overrides]  # deprecated keys, with a warning
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose(config_name="train", overrides=overrides)
    except HydraException as err:
        raise StembedError(on_error.format(overrides=overrides, error=err)) from None
