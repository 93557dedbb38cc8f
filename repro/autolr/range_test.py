"""LR range test: train briefly at growing LRs and read the max LR off the loss curve.

The suggested max LR is the point of steepest descent of the smoothed loss against log LR,
searched only before the loss minimum: it sits a bit before the minimum, where the loss still
falls fastest. The model, optimizer and RNG states are restored afterwards.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .batches import BatchSource
from .config import RangeTestConfig
from .ranks import mean_loss
from .snapshot import TrainingSnapshot

log = logging.getLogger(__name__)

SUGGESTION_RULE = "steepest descent of the smoothed loss vs log LR, before the loss minimum"


@dataclass
class RangeTestResult:
    """The sweep's rows and the suggested max LR."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggested_lr: float = float("nan")
    rule: str = SUGGESTION_RULE
    stop_reason: str = "completed the sweep"
    train_steps: int = 0
    seconds: float = 0.0

    def rows(self) -> list[dict]:
        return [
            {"step": i, "lr": lr, "loss": loss, "smoothed_loss": smooth}
            for i, (lr, loss, smooth) in enumerate(zip(self.lrs, self.losses, self.smoothed))
        ]


def sweep_lrs(config: RangeTestConfig) -> np.ndarray:
    if config.mode == "exp":
        return np.geomspace(config.min_lr, config.max_lr, config.steps)
    return np.linspace(config.min_lr, config.max_lr, config.steps)


def suggest_max_lr(lrs, smoothed, skip_start: int | None = None, window: int = 5) -> tuple[float, str]:
    """Return (LR, rule) at the steepest fall of `smoothed` vs log LR before its minimum.

    The slope at each point is a least-squares line through the `window` points centred on it,
    because point-to-point differences of a noisy loss curve are dominated by noise. The first
    `skip_start` points (default: a tenth of the sweep) are ignored: the smoothed loss has not
    settled there. Non-finite points must already be dropped. When the curve never falls after
    the skipped points, it returns the first LR considered and names that case in the rule.
    """
    lrs = np.asarray(lrs, dtype=float)
    smoothed = np.asarray(smoothed, dtype=float)
    skip = max(1, lrs.size // 10) if skip_start is None else skip_start
    if lrs.size - skip < 3:
        return (float(lrs[0]) if lrs.size else float("nan")), "too few points: smallest LR"

    lowest = skip + int(np.argmin(smoothed[skip:]))
    if lowest - skip < 2:
        return float(lrs[skip]), "loss never fell: smallest LR considered"
    x = np.log(lrs)
    half = window // 2
    slopes = []
    for i in range(skip, lowest):
        low, high = max(skip, i - half), min(lowest, i + half) + 1
        slopes.append(np.polyfit(x[low:high], smoothed[low:high], 1)[0])
    steepest = skip + int(np.argmin(slopes))
    return float(lrs[steepest]), SUGGESTION_RULE


def run_range_test(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   train_step: Callable[[Any], torch.Tensor], batches: BatchSource,
                   config: RangeTestConfig, generator: torch.Generator,
                   set_lr: Callable[[float], None]) -> RangeTestResult:
    """Sweep the LR over `config.steps` training steps, one fresh batch each, then restore.

    Afterwards the model (parameters, buffers, train/eval mode), the optimizer (state and param
    groups) and the torch, NumPy and Python RNG states are exactly as before. Only `generator`,
    which draws the sweep's batches, has advanced.

    `train_step(batch)` takes one optimizer step and returns the loss before it; `set_lr(lr)`
    applies an LR to the optimizer. The sweep stops at a non-finite loss or once the smoothed
    loss passes `diverge_factor` times its best value. Under a torch.distributed process group the
    losses are averaged across ranks, so every rank stops at the same step.
    """
    started = time.perf_counter()
    snapshot = TrainingSnapshot(model, optimizer)
    snapshot.capture()
    result = RangeTestResult()
    average, best = 0.0, math.inf
    was_training = model.training  # the snapshot stores tensors and RNG states, not the module mode

    try:
        model.train()
        for step, lr in enumerate(sweep_lrs(config)):
            (batch,) = batches.draw(1, generator)
            set_lr(float(lr))
            loss = mean_loss(train_step(batch))  # averaged across data-parallel ranks, if any
            result.train_steps += 1
            if not math.isfinite(loss):
                result.stop_reason = f"non-finite loss at lr {lr:.3g}"
                break

            average = config.smoothing * average + (1 - config.smoothing) * loss
            smooth = average / (1 - config.smoothing ** (step + 1))
            result.lrs.append(float(lr))
            result.losses.append(loss)
            result.smoothed.append(smooth)
            best = min(best, smooth)
            if smooth > config.diverge_factor * best:
                result.stop_reason = f"smoothed loss {smooth:.3g} > {config.diverge_factor:g} x best {best:.3g}"
                break
    finally:
        snapshot.restore()
        model.train(was_training)

    suggested, rule = suggest_max_lr(result.lrs, result.smoothed)
    result.suggested_lr = suggested * config.safety
    result.rule = rule if config.safety == 1 else f"{rule}, times safety {config.safety:g}"
    result.seconds = time.perf_counter() - started
    log.info("range test: %d steps from %.2g to %.2g (%s); suggested max LR %.4g (%s)",
             result.train_steps, config.min_lr, result.lrs[-1] if result.lrs else config.min_lr,
             result.stop_reason, result.suggested_lr, result.rule)
    return result
