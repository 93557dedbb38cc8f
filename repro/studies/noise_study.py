"""`repro noise-study`: how noisy the superbatch loss estimate is, and which size AutoLR needs.

At one model state, each of `draws` independent draws takes `max_superbatch` fresh mini-batches.
The estimate at size s is the mean loss of a draw's first s mini-batches, so all sizes come from
the same forward passes. Estimates of different sizes are correlated within a draw, but each
size's spread is over independent draws. The chosen size is the smallest whose standard
deviation is below `fraction` times the typical loss gap between AutoLR's neighbouring fit
candidates at the same state. `superbatch_from_study` reads that choice back for AutoLR.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError


def superbatch_sizes(max_superbatch: int) -> list[int]:
    """Return 1, 2, 4, ... up to `max_superbatch`, appending `max_superbatch` when it is not a power of 2."""
    sizes = [1]
    while sizes[-1] * 2 <= max_superbatch:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != max_superbatch:
        sizes.append(max_superbatch)
    return sizes


def noise_table(losses: np.ndarray, sizes: list[int]) -> list[dict]:
    """Return the rows of noise_study.csv from per-batch losses shaped (draws, max_superbatch)."""
    draws = losses.shape[0]
    rows = []
    for size in sizes:
        estimates = losses[:, :size].mean(axis=1)
        rows.append({"superbatch": size, "draws": draws, "mean_loss": float(estimates.mean()),
                     "std_loss": float(estimates.std(ddof=1))})
    return rows


def neighbour_gap(losses: list[float]) -> float:
    """Return the median |loss difference| between neighbouring candidates (ordered by LR), over finite pairs."""
    gaps = [abs(b - a) for a, b in zip(losses, losses[1:]) if math.isfinite(a) and math.isfinite(b)]
    if not gaps:
        return math.nan
    return float(np.median(gaps))


def pick_superbatch(rows: list[dict], threshold: float) -> int | None:
    """Return the smallest superbatch size whose standard deviation is below `threshold`, or None."""
    for row in rows:
        if row["std_loss"] < threshold:
            return int(row["superbatch"])
    return None


def estimate_superbatch(rows: list[dict], threshold: float) -> int:
    """Estimate the size needed for std < threshold if the std falls as 1/sqrt(size).

    An extrapolation for when no measured size qualifies: std(s) ~ sigma / sqrt(s), with sigma
    the least-squares fit of std * sqrt(s) over the measured sizes.
    """
    sigma = float(np.mean([row["std_loss"] * math.sqrt(row["superbatch"]) for row in rows]))
    return max(1, math.ceil((sigma / threshold) ** 2))


def superbatch_from_study(path: str | Path) -> int:
    """Read the superbatch size a noise study chose from its folder's run.json.

    Raises ConfigError when the folder is not a completed noise study or the study found no size
    below its threshold.
    """
    folder = Path(path).expanduser()
    record = folder / "run.json"
    if not record.is_file():
        raise ConfigError(f"superbatch_from={path}: {record} not found; pass the folder `repro noise-study` "
                          "printed, e.g. results/mnist_5k-resnet18_mnist/noise_study-sgd/seed0")
    data = json.loads(record.read_text())
    study = data.get("noise_study")
    if not isinstance(study, dict) or data.get("status") != "completed":
        raise ConfigError(f"superbatch_from={path}: {record} is not a completed noise study "
                          f"(status {data.get('status')!r}); run `repro noise-study` first")
    chosen = study.get("chosen_superbatch")
    if not isinstance(chosen, int) or chosen < 1:
        estimate = study.get("estimated_superbatch")
        raise ConfigError(f"superbatch_from={path}: the study found no size up to {study.get('max_superbatch')} "
                          f"mini-batches below its threshold (estimated need: {estimate}); rerun it with a larger "
                          "study.noise.max_superbatch or set schedule.superbatch directly")
    return chosen
