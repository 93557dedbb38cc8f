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

SCHEDULE_KINDS = ("step", "inverse_sqrt", "linear", "autolr")


class LRSchedule(ABC):
    """Sets the LR for each training step; `start` runs once before the first step."""

    extra: ExtraCompute

    def start(self) -> None:
        """Prepare before training (AutoLR runs its range test here)."""

    @abstractmethod
    def apply(self, step: int) -> float:
        """Set the optimizer's LR for 0-based training step `step` and return it."""

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        """Receive each evaluation's metrics (a plateau schedule reacts to them)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class _PerGroupSchedule(LRSchedule):
    """A schedule given as a function of the step; groups keep their LR ratio to the first."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float):
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.scales = [group["lr"] / base_lr if base_lr else 1.0 for group in optimizer.param_groups]
        self.extra = ExtraCompute()

    @abstractmethod
    def lr_at(self, step: int) -> float: ...

    def apply(self, step: int) -> float:
        lr = self.lr_at(step)
        for group, scale in zip(self.optimizer.param_groups, self.scales):
            group["lr"] = lr * scale
        return lr


class InverseSqrt(_PerGroupSchedule):
    """Linear warm-up to `base_lr` over `warmup_steps`, then base * sqrt(warmup / step).

    The usual Transformer schedule for IWSLT-sized translation (fairseq's inverse_sqrt).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, warmup_steps: int):
        super().__init__(optimizer, base_lr)
        if warmup_steps < 1:
            raise ConfigError(f"schedule.warmup_steps must be >= 1 for inverse_sqrt, got {warmup_steps}")
        self.warmup_steps = warmup_steps

    def lr_at(self, step: int) -> float:
        update = step + 1
        return self.base_lr * min(update / self.warmup_steps, (self.warmup_steps / update) ** 0.5)


class LinearWarmupDecay(_PerGroupSchedule):
    """Linear warm-up over `warmup_fraction` of all steps, then linear decay to 0 (BERT fine-tuning)."""

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, total_steps: int, warmup_fraction: float):
        super().__init__(optimizer, base_lr)
        if not 0 <= warmup_fraction < 1:
            raise ConfigError(f"schedule.warmup_fraction must lie in [0, 1), got {warmup_fraction}")
        self.total_steps = total_steps
        self.warmup_steps = int(warmup_fraction * total_steps)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        remaining = self.total_steps - step
        return self.base_lr * max(0.0, remaining / max(1, self.total_steps - self.warmup_steps))


class StepDecay(_PerGroupSchedule):
    """LR = base * gamma^(number of milestones reached), milestones in epochs.

    An optional linear warm-up multiplies the LR by (step + 1) / warm-up steps at the start.
    `milestones=[]` with `gamma=1` is a constant LR.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float, milestones: Sequence[int],
                 gamma: float, steps_per_epoch: int, warmup_epochs: float = 0.0):
        super().__init__(optimizer, base_lr)
        if sorted(milestones) != list(milestones):
            raise ConfigError(f"schedule.milestones must be increasing epochs, got {list(milestones)}")
        self.milestones = list(milestones)
        self.gamma = gamma
        self.steps_per_epoch = steps_per_epoch
        self.warmup_steps = int(round(warmup_epochs * steps_per_epoch))

    def lr_at(self, step: int) -> float:
        epoch = step // self.steps_per_epoch
        lr = self.base_lr * self.gamma ** sum(epoch >= milestone for milestone in self.milestones)
        if step < self.warmup_steps:
            lr *= (step + 1) / self.warmup_steps
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
    source = options.pop("superbatch_from", None)
    if source:
        from .studies import superbatch_from_study

        options["superbatch"] = superbatch_from_study(source)
    try:
        return AutoLRConfig(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid AutoLR option: {error}") from error


def build_schedule(schedule_cfg, optimizer: torch.optim.Optimizer, base_lr: float, steps_per_epoch: int,
                   total_steps: int, make_tuner: Callable[[AutoLRConfig], AutoLR]) -> LRSchedule:
    """Build the schedule that `schedule_cfg.kind` names: step, inverse_sqrt, linear, autolr or a peer kind.

    Under an LR-free optimizer (repro/peers/lr_free.py) the schedule returns the effective LR.
    """
    from .peers.lr_free import wrap_for_optimizer

    schedule = _build_schedule_kind(schedule_cfg, optimizer, base_lr, steps_per_epoch, total_steps, make_tuner)
    return wrap_for_optimizer(schedule, optimizer, make_tuner)


def _build_schedule_kind(schedule_cfg, optimizer: torch.optim.Optimizer, base_lr: float, steps_per_epoch: int,
                         total_steps: int, make_tuner: Callable[[AutoLRConfig], AutoLR]) -> LRSchedule:
    from .peers.schedules import PEER_SCHEDULE_KINDS, build_peer_schedule

    kind = schedule_cfg.kind
    if kind == "step":
        return StepDecay(optimizer, base_lr, list(schedule_cfg.milestones), schedule_cfg.gamma,
                         steps_per_epoch, schedule_cfg.warmup_epochs)
    if kind == "inverse_sqrt":
        return InverseSqrt(optimizer, base_lr, schedule_cfg.warmup_steps)
    if kind == "linear":
        return LinearWarmupDecay(optimizer, base_lr, total_steps, schedule_cfg.warmup_fraction)
    if kind == "autolr":
        return AutoLRSchedule(make_tuner(autolr_config(schedule_cfg)))
    if kind in PEER_SCHEDULE_KINDS:
        return build_peer_schedule(schedule_cfg, optimizer, total_steps, make_tuner)
    kinds = ", ".join(SCHEDULE_KINDS + PEER_SCHEDULE_KINDS)
    raise ConfigError(f"unknown schedule.kind {kind!r}; choose one of {kinds}")
