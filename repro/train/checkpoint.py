"""Checkpoints that a kill at any moment cannot corrupt: written to a temp file, then renamed."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(folder: Path, state: dict) -> Path:
    path = folder / CHECKPOINT_NAME
    partial = folder / (CHECKPOINT_NAME + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def load_checkpoint(folder: Path, device: torch.device) -> dict | None:
    """Load the folder's last checkpoint, or return None when the run stopped before its first one."""
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        return None
    return torch.load(path, map_location=device, weights_only=False)
