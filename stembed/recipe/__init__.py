"""The training recipe: Hydra wiring, checks, model, losses, evaluation, card."""
