"""Training speed: length-split and length-grouped batches, throughput metrics."""
