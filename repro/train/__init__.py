"""The generic training loop, checkpoints and device selection."""
