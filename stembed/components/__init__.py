"""The parts the recipe combines: model loading, losses, prompts, evaluators, per-example tables.

Below data, speed, tracking and everything above them: nothing here imports another stembed package
except the base modules (errors, hub, config, internals). pyproject.toml's import contract enforces it.
"""
