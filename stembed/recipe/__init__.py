"""The training recipe: Hydra wiring, config checks, the recipe (train.py), its inputs, the card, `mine`."""
