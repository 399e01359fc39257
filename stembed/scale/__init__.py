"""Scale-out: sweeps, distributed training, stop and resume."""
