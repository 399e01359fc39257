"""Statistics over per-example evaluation scores: paired bootstrap, run diffs, seed groups (numpy only)."""
