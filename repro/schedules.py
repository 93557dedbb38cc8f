"""LR schedules behind one interface, so the training loop never branches on the schedule type.

Each schedule sets the optimizer's LR before every step (`apply`) and reports extra compute
(nonzero only for AutoLR, whose searches and range test are work beyond training).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch

from .autolr import AutoLR, AutoLRConfig, ExtraCompute
from .errors import ConfigError


class LRSchedule(ABC):
    """Sets the LR for each training step; `start` runs once before the first step."""

    extra: ExtraCompute

    def start(self) -> None:
        """Prepare before training (AutoLR runs its range test here)."""

    @abstractmethod
    def apply(self, step: int) -> float:
        """Set the optimizer's LR for 0-based training step `step` and return it."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class StepDecay(LRSchedule):
    """LR = base * gamma^(number of milestones reached), milestones in epochs.

    An optional linear warm-up multiplies the LR by (step + 1) / warm-up steps at the start.
    `milestones=[]` with `gamma=1` is a constant LR.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, milestones: Sequence[int],
                 gamma: float, steps_per_epoch: int, warmup_epochs: float = 0.0):
        if sorted(milestones) != list(milestones):
            raise ConfigError(f"schedule.milestones must be increasing epochs, got {list(milestones)}")
        self.optimizer = optimizer
        # Groups keep their LR ratio to the first one, as AutoLR does.
        self.scales = [group["lr"] / base_lr if base_lr else 1.0 for group in optimizer.param_groups]
        self.base_lr = base_lr
        self.milestones = list(milestones)
        self.gamma = gamma
        self.steps_per_epoch = steps_per_epoch
        self.warmup_steps = int(round(warmup_epochs * steps_per_epoch))
        self.extra = ExtraCompute()

    def lr_at(self, step: int) -> float:
        epoch = step // self.steps_per_epoch
        lr = self.base_lr * self.gamma ** sum(epoch >= milestone for milestone in self.milestones)
        if step < self.warmup_steps:
            lr *= (step + 1) / self.warmup_steps
        return lr

    def apply(self, step: int) -> float:
        lr = self.lr_at(step)
        for group, scale in zip(self.optimizer.param_groups, self.scales):
            group["lr"] = lr * scale
        return lr


class AutoLRSchedule(LRSchedule):
    """The AutoLR tuner seen through the schedule interface."""

    def __init__(self, tuner: AutoLR):
        self.tuner = tuner

    @property
    def extra(self) -> ExtraCompute:
        return self.tuner.extra

    def start(self) -> None:
        self.tuner.start()

    def apply(self, step: int) -> float:
        return self.tuner.update(step)

    def state_dict(self) -> dict:
        return self.tuner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.tuner.load_state_dict(state)


def autolr_config(schedule_cfg) -> AutoLRConfig:
    """AutoLRConfig from the `schedule` group (its `name` and `kind` keys are not options)."""
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(schedule_cfg, resolve=True)
    options.pop("name", None)
    options.pop("kind", None)
    try:
        return AutoLRConfig(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid AutoLR option: {error}") from error


def build_schedule(schedule_cfg, optimizer: torch.optim.Optimizer, base_lr: float, steps_per_epoch: int,
                   make_tuner: Callable[[AutoLRConfig], AutoLR]) -> LRSchedule:
    """Build the schedule that `schedule_cfg.kind` names (step or autolr)."""
    if schedule_cfg.kind == "step":
        return StepDecay(optimizer, base_lr, list(schedule_cfg.milestones), schedule_cfg.gamma,
                         steps_per_epoch, schedule_cfg.warmup_epochs)
    if schedule_cfg.kind == "autolr":
        return AutoLRSchedule(make_tuner(autolr_config(schedule_cfg)))
    raise ConfigError(f"unknown schedule.kind {schedule_cfg.kind!r}; choose step or autolr")
