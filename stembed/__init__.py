"""stembed: an experiment runner for fine-tuning sentence-embedding models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stembed")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
