"""Range-test peer check: our range test's suggested max LR next to the torch-lr-finder package's.

Both sweep the same LRs (from the onecycle schedule's range_test options) on a fresh model built
from the same seed. They differ in the suggestion rule and the batches. Ours takes the steepest
fall of the smoothed loss against log LR before the loss minimum, and draws batches as AutoLR
does. torch-lr-finder takes the most negative np.gradient of its smoothed loss after skipping the
first 10 and last 5 points (its `plot()` defaults), and reads batches in DataLoader order.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time

import numpy as np
import torch
from omegaconf import DictConfig

from ..autolr import RangeTestConfig, run_range_test
from ..components import build_components, prepare
from ..train.loop import epoch_generator

log = logging.getLogger(__name__)

# Columns of range_test_peer.csv (one row per tool) and range_test_peer_curves.csv (one row per point).
PEER_COLUMNS = ("tool", "suggested_max_lr", "rule", "points", "stop_reason", "seconds")
CURVE_COLUMNS = ("tool", "step", "lr", "loss")
LR_FINDER_RULE = "torch-lr-finder: steepest np.gradient of the smoothed loss, skipping 10 first and 5 last points"


def range_test_config(cfg: DictConfig) -> RangeTestConfig:
    """Return the sweep options of `cfg.schedule.range_test` (the onecycle schedule's)."""
    from omegaconf import OmegaConf

    return RangeTestConfig(**OmegaConf.to_container(cfg.schedule.range_test, resolve=True))


def ours(cfg: DictConfig, sweep: RangeTestConfig) -> tuple[dict, list[dict]]:
    """Run repro's range test on a fresh model, with the batch stream AutoLR's own range test uses."""
    device = prepare(cfg)
    parts = build_components(cfg, device)
    optimizer = parts.optimizer

    def set_lr(lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    generator = torch.Generator().manual_seed((cfg.seed * 1_000_003) % (2**63))  # AutoLR's range-test stream
    result = run_range_test(parts.task.model, optimizer, parts.train_step, parts.batch_source(), sweep,
                            generator, set_lr)
    row = {"tool": "repro", "suggested_max_lr": result.suggested_lr, "rule": result.rule,
           "points": len(result.lrs), "stop_reason": result.stop_reason, "seconds": result.seconds}
    curve = [{"tool": "repro", "step": i, "lr": lr, "loss": loss}
             for i, (lr, loss) in enumerate(zip(result.lrs, result.smoothed))]
    return row, curve


class _BatchAsOutput(torch.nn.Module):
    """Pass the whole batch through, so the criterion can call the task's own loss on the real model."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return batch


def lr_finder(cfg: DictConfig, sweep: RangeTestConfig, ax=None) -> tuple[dict, list[dict]]:
    """Run torch-lr-finder's LRFinder on a fresh model and read its suggestion from `plot()`.

    `ax` (a matplotlib Axes) receives the package's own plot; a private figure is used when None.
    """
    from torch_lr_finder import LRFinder, TrainDataLoaderIter

    class WholeBatches(TrainDataLoaderIter):
        def inputs_labels_from_batch(self, batch_data):
            return batch_data, None

    device = prepare(cfg)
    parts = build_components(cfg, device)
    model, task = parts.task.model, parts.task
    loader = task.train_loader(parts.batch_size, epoch_generator(cfg.seed, 0), cfg.trainer.num_workers)

    def criterion(batch, _labels):
        return task.loss(model, batch)

    started = time.perf_counter()
    finder = LRFinder(_BatchAsOutput(model), parts.optimizer, criterion, device=device)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        finder.range_test(WholeBatches(loader), start_lr=sweep.min_lr, end_lr=sweep.max_lr, num_iter=sweep.steps,
                          step_mode=sweep.mode, smooth_f=1 - sweep.smoothing, diverge_th=sweep.diverge_factor)
    seconds = time.perf_counter() - started
    lrs, losses = finder.history["lr"], finder.history["loss"]
    stop = "completed the sweep" if len(lrs) == sweep.steps else "stopped early: the loss diverged"
    figure = None
    if ax is None:
        from ..figures.style import new_figure

        figure = new_figure(4, 3)
        ax = figure.add_subplot()
    try:
        with contextlib.redirect_stdout(printed):
            _, suggested = finder.plot(ax=ax, suggest_lr=True)
        rule = LR_FINDER_RULE
    except RuntimeError as error:  # fewer points than the skipped ones need
        suggested, rule = float("nan"), f"no suggestion: {error}"
    finally:
        if figure is not None:
            from ..figures.style import close_figure

            close_figure(figure)
    finder.reset()
    row = {"tool": "torch-lr-finder", "suggested_max_lr": float(suggested), "rule": rule, "points": len(lrs),
           "stop_reason": stop, "seconds": seconds}
    curve = [{"tool": "torch-lr-finder", "step": i, "lr": lr, "loss": loss}
             for i, (lr, loss) in enumerate(zip(lrs, np.asarray(losses, dtype=float)))]
    return row, curve
