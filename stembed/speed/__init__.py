"""Training speed: the `speed` config group's plan, length-split and length-grouped batches, throughput."""

AUTO = "auto"
SPLIT_BY_LENGTH, GROUP_BY_LENGTH, RANDOM = "split_by_length", "group_by_length", "random"
BATCHES = (AUTO, SPLIT_BY_LENGTH, GROUP_BY_LENGTH, RANDOM)  # speed.batches values
