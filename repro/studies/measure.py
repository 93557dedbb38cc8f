"""Loss measurements at one frozen training state, made exactly as the AutoLR tuner makes them."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..autolr import TrainingSnapshot

LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


def lr_setter(optimizer: torch.optim.Optimizer) -> Callable[[float], None]:
    """Return set_lr(lr) that gives every param group `lr` times its current ratio to the first group, as AutoLR does."""
    first = optimizer.param_groups[0]["lr"] or 1.0
    scales = [(group["lr"] or first) / first for group in optimizer.param_groups]

    def set_lr(lr: float) -> None:
        for group, scale in zip(optimizer.param_groups, scales):
            group["lr"] = lr * scale

    return set_lr


class FrozenState:
    """Measures losses from one captured training state and puts that state back on exit.

    Use it as a context manager. `loss_after_trial(lr, trial, superbatch)` repeats the tuner's
    candidate measurement: restore the state, take one optimizer step per trial batch at `lr`,
    then average the loss over the superbatch without gradients. `batch_losses` returns plain
    forward losses at the captured state. Both count their optimizer steps and forward batches.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 train_step: Callable[[Any], torch.Tensor], loss_fn: LossFn, measure_in_train_mode: bool):
        self.model = model
        self.optimizer = optimizer
        self.train_step = train_step
        self.loss_fn = loss_fn
        self.measure_in_train_mode = measure_in_train_mode
        self.snapshot = TrainingSnapshot(model, optimizer)
        self.set_lr = lr_setter(optimizer)
        self.train_steps = 0
        self.forward_batches = 0
        self._was_training = model.training

    def __enter__(self) -> FrozenState:
        self._was_training = self.model.training
        self.snapshot.capture()
        return self

    def __exit__(self, *exc_info) -> None:
        self.snapshot.restore()
        self.model.train(self._was_training)

    def loss_after_trial(self, lr: float, trial: list, superbatch: list) -> float:
        """Return the mean superbatch loss after the trial steps at `lr`, or NaN if a step or the result diverged."""
        self.snapshot.restore()
        self.set_lr(lr)
        self.model.train()
        for batch in trial:
            self.train_steps += 1
            if not math.isfinite(float(self.train_step(batch))):
                return float("nan")
        loss = float(torch.stack(self.batch_losses(superbatch, restore=False)).mean())
        return loss if math.isfinite(loss) else float("nan")

    def batch_losses(self, batches: list, restore: bool = True) -> list[torch.Tensor]:
        """Loss of each batch without gradients, in the tuner's measurement mode.

        With `restore`, the captured state is put back first. In train mode BatchNorm updates its
        running statistics even without gradients, so a caller comparing several calls at the
        same state restores before each.
        """
        if restore:
            self.snapshot.restore()
        self.model.train(self.measure_in_train_mode)
        with torch.no_grad():
            losses = [self.loss_fn(self.model, batch).detach().float() for batch in batches]
        self.forward_batches += len(batches)
        return losses
