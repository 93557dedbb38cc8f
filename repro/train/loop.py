"""The training loop shared by every setting: schedule -> step -> log -> evaluate -> checkpoint.

The loop never branches on the schedule or the task. Losses stay on the device and are read back
once every `log_every` steps, so logging and the non-finite check cost one sync per window.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..distributed import SINGLE, DistEnv, mean_across_ranks
from ..errors import DivergedError
from ..results.csvlog import CsvLog
from ..schedules import LRSchedule
from ..tasks import Task
from .checkpoint import rng_states, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    """Position of a run: completed epochs and steps, and wall time spent in earlier sessions."""

    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Shuffling generator of one epoch: a function of (seed, epoch) only, so resumes match."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class Trainer:
    """Runs epochs from a LoopState to `trainer_cfg.epochs`, writing CSV rows and checkpoints."""

    def __init__(self, task: Task, optimizer: torch.optim.Optimizer, schedule: LRSchedule,
                 train_step: Callable[[Any], torch.Tensor], epochs_log: CsvLog, steps_log: CsvLog,
                 trainer_cfg, seed: int, folder: Path, dist: DistEnv = SINGLE,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 scaler: torch.amp.GradScaler | None = None):
        """`dist` is this process's data-parallel rank; only rank 0 saves checkpoints. `autocast`
        wraps evaluation in the training precision, and `scaler` (fp16) is saved in checkpoints."""
        self.task = task
        self.optimizer = optimizer
        self.schedule = schedule
        self.train_step = train_step
        self.epochs_log = epochs_log
        self.steps_log = steps_log
        self.cfg = trainer_cfg
        self.seed = seed
        self.folder = folder
        self.dist = dist
        self.autocast = autocast
        self.scaler = scaler
        self.steps_per_epoch = task.steps_per_epoch(trainer_cfg.batch_size)
        self.last_metrics: dict[str, float] = {}
        self.last_loss = float("nan")

    def run(self, state: LoopState) -> LoopState:
        session_start = time.perf_counter() - state.elapsed
        model = self.task.model
        spe = self.steps_per_epoch
        # Steps into an epoch after which to evaluate: `evals_per_epoch` evenly spaced points.
        evals = self.cfg.get("evals_per_epoch", 1)
        eval_points = sorted({max(1, round(spe * k / evals)) for k in range(1, evals + 1)})

        for epoch in range(state.epoch, self.cfg.epochs):
            model.train()
            loader = self._loader(epoch)
            window: list[tuple[int, float, torch.Tensor]] = []
            loss_sum, loss_steps, lr = 0.0, 0, float("nan")
            bar = tqdm(loader, total=spe, desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
                       leave=False, disable=not (self.cfg.progress and sys.stderr.isatty() and self.dist.is_main))
            for in_epoch, batch in enumerate(bar, start=1):
                lr = self.schedule.apply(state.step)
                loss = self.train_step(self.task.to_device(batch))
                window.append((state.step, lr, loss))
                state.step += 1
                full = state.step % self.cfg.log_every == 0
                if full or in_epoch in eval_points:
                    loss_sum += self._flush(window, epoch, write_row=full)
                    loss_steps += len(window)
                    window = []
                    bar.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{lr:.3g}")
                if in_epoch in eval_points:
                    # Mid-epoch rows carry a fractional epoch; the last one closes the epoch.
                    at = epoch + 1 if in_epoch == eval_points[-1] else round(epoch + in_epoch / spe, 4)
                    metrics = self._evaluate(model)
                    state.elapsed = time.perf_counter() - session_start
                    self._write_epoch(at, state, lr, loss_sum / max(loss_steps, 1), metrics)
                    self.schedule.on_evaluate(metrics)
                    loss_sum, loss_steps = 0.0, 0
                if in_epoch == spe:
                    break

            state.epoch = epoch + 1
            state.elapsed = time.perf_counter() - session_start
            if state.epoch % self.cfg.checkpoint_every == 0 or state.epoch == self.cfg.epochs:
                self.save(state)
        return state

    def _loader(self, epoch: int):
        """Build one epoch's batches: the whole batches, or this rank's slices under data parallelism."""
        generator = epoch_generator(self.seed, epoch)
        if self.dist.enabled:
            return self.task.train_shard_loader(self.cfg.batch_size, generator, self.cfg.num_workers, self.dist)
        return self.task.train_loader(self.cfg.batch_size, generator, self.cfg.num_workers)

    def _evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Evaluate with the optimizer in eval mode where it has one (schedule-free optimizers do)."""
        switch = callable(getattr(self.optimizer, "eval", None)) and callable(getattr(self.optimizer, "train", None))
        if switch:
            self.optimizer.eval()
        try:
            with self.autocast():
                return self.task.evaluate(model)
        finally:
            if switch:
                self.optimizer.train()

    def save(self, state: LoopState) -> None:
        """Write checkpoint.pt; only rank 0 writes under data parallelism (the ranks' states are equal)."""
        if not self.dist.is_main:
            return
        checkpoint = {
            "epoch": state.epoch, "step": state.step, "elapsed": state.elapsed,
            "model": self.task.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "rng": rng_states(),
        }
        if self.scaler is not None:
            checkpoint["scaler"] = self.scaler.state_dict()
        save_checkpoint(self.folder, checkpoint)

    def _flush(self, window: list[tuple[int, float, torch.Tensor]], epoch: int, write_row: bool) -> float:
        """Read the window's losses back, stop on a non-finite one, write a steps.csv row; returns their sum."""
        if not window:
            return 0.0
        losses = torch.stack([loss.float() for _, _, loss in window])
        if self.dist.enabled:  # the global batch's loss: the mean of the ranks' equal-sized slices
            losses = mean_across_ranks(losses)
        values = losses.cpu().tolist()
        for (step, lr, _), value in zip(window, values):
            if not math.isfinite(value):
                raise DivergedError(
                    f"training loss became {value} at step {step} (epoch {epoch + 1}, lr {lr:.4g}); "
                    "lower the LR (opt.lr=...) or, under AutoLR, schedule.range_test.safety=0.5", step, lr)
        step, lr, _ = window[-1]
        self.last_loss = values[-1]
        if write_row:
            self.steps_log.write({"step": step, "epoch": (step + 1) / self.steps_per_epoch, "lr": lr,
                                  "loss": values[-1], "loss_avg": sum(values) / len(values)})
        return sum(values)

    def _write_epoch(self, epoch: float, state: LoopState, lr: float, train_loss: float,
                     metrics: dict[str, float]) -> None:
        extra = self.schedule.extra
        row = {"epoch": epoch, "step": state.step, "lr": lr, "train_loss": train_loss, **metrics,
               "time_s": state.elapsed, "autolr_time_s": extra.seconds,
               "autolr_extra_steps": extra.train_steps, "autolr_extra_forward": extra.forward_batches}
        self.epochs_log.write(row)
        self.last_metrics = metrics
        formatted = " ".join(f"{key} {value:.4g}" for key, value in metrics.items())
        log.info("epoch %g/%d step %d lr %.4g train_loss %.4f %s time %.1fs (autolr %.1fs)",
                 epoch, self.cfg.epochs, state.step, lr, train_loss, formatted, state.elapsed, extra.seconds)
