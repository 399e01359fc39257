"""`python -m stembed ...` is the same as `stembed ...` (useful under torchrun)."""

from stembed.cli import main

main()
