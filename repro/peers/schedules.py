"""Peer LR schedules behind the LRSchedule interface, built on torch.optim.lr_scheduler.

- plateau: ReduceLROnPlateau on a validation metric, reduced after each evaluation that fails to
  improve it; the mode is checked against the metric's direction.
- cosine: cosine annealing to `eta_min` over the run, after an optional linear warm-up.
- onecycle: OneCycleLR, its max LR found by AutoLR's own range test (or given as schedule.max_lr).
- knee: explore at the peak LR (opt.lr) for `explore_fraction` of the steps, then decay linearly to 0.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import torch
from torch.optim import lr_scheduler

from ..autolr import AutoLR, AutoLRConfig, ExtraCompute
from ..errors import ConfigError
from ..schedules import LRSchedule, autolr_config
from .metrics import metric_direction

log = logging.getLogger(__name__)

PEER_SCHEDULE_KINDS = ("plateau", "cosine", "onecycle", "knee")


class TorchSchedulerSchedule(LRSchedule):
    """A torch LR scheduler seen through `apply(step)`: it is stepped once per training step.

    `position` counts the scheduler steps taken, so after `apply(k)` the scheduler sits at step k
    and a resumed run continues from the saved position.
    """

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.scheduler: lr_scheduler.LRScheduler | None = None
        self.position = 0
        self.extra = ExtraCompute()

    def apply(self, step: int) -> float:
        if self.scheduler is None:
            raise RuntimeError(f"{type(self).__name__}.apply() called before start()")
        with warnings.catch_warnings():
            # After a resume the scheduler steps before this process's first optimizer step. torch
            # warns about that order, but it is the right one here.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)`")
            while self.position < step:
                self.scheduler.step()
                self.position += 1
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        return {"position": self.position, "scheduler": self.scheduler.state_dict() if self.scheduler else None}

    def load_state_dict(self, state: dict) -> None:
        self.position = state["position"]
        if state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])


class CosineSchedule(TorchSchedulerSchedule):
    """Linear warm-up over `warmup_fraction` of the steps (LinearLR), then CosineAnnealingLR to `eta_min`."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float, eta_min: float):
        super().__init__(optimizer)
        warmup = int(warmup_fraction * total_steps)
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup), eta_min=eta_min)
        if warmup < 2:  # a one-step warm-up already starts at the peak
            self.scheduler = cosine
        else:
            # LR at step i < warmup is (i + 1) / warmup of the peak, as in the step and linear schedules.
            ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1)
            self.scheduler = lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warmup])


def knee_factor(step: int, total_steps: int, explore_steps: int, warmup_steps: int) -> float:
    """Return the knee schedule's LR multiplier at 0-based `step`: warm-up, explore at 1, linear decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step < explore_steps:
        return 1.0
    return max(0.0, (total_steps - step) / max(1, total_steps - explore_steps))


class KneeSchedule(TorchSchedulerSchedule):
    """The explore-then-decay ("knee") schedule as a LambdaLR: peak LR until `explore_fraction`, then linear to 0."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, explore_fraction: float,
                 warmup_fraction: float):
        super().__init__(optimizer)
        explore = int(explore_fraction * total_steps)
        warmup = int(warmup_fraction * total_steps)
        if warmup > explore:
            raise ConfigError(f"schedule.warmup_fraction={warmup_fraction} exceeds schedule.explore_fraction="
                              f"{explore_fraction}; the warm-up must end before the decay starts")
        self.scheduler = lr_scheduler.LambdaLR(
            optimizer, lambda step: knee_factor(step, total_steps, explore, warmup))


class OneCycleSchedule(TorchSchedulerSchedule):
    """OneCycleLR whose max LR comes from the LR range test that AutoLR runs (same sweep, same batches).

    The range test's training steps and time are counted in `extra`, as AutoLR's are.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, schedule_cfg, tuner: AutoLR | None):
        super().__init__(optimizer)
        self.total_steps = total_steps
        self.max_lr: float | None = schedule_cfg.max_lr
        self.options = {key: schedule_cfg[key] for key in ("pct_start", "anneal_strategy", "div_factor",
                                                            "final_div_factor", "three_phase")}
        self.cycle_momentum = bool(schedule_cfg.cycle_momentum)
        self.momentum_range = (schedule_cfg.base_momentum, schedule_cfg.max_momentum)
        self.tuner = tuner
        self.scales = [group["lr"] / optimizer.param_groups[0]["lr"] for group in optimizer.param_groups]
        if self.cycle_momentum and not _has_momentum(optimizer):
            raise ConfigError("schedule.cycle_momentum=true would add momentum to an optimizer that has none "
                              f"({type(optimizer).__name__} with momentum 0); use opt=momentum or "
                              "schedule.cycle_momentum=false")
        if self.max_lr is None and tuner is None:
            raise ConfigError("schedule=onecycle needs schedule.max_lr=<number> here, because no range test "
                              "can run without the model and training batches")

    @property
    def extra(self) -> ExtraCompute:
        return self.tuner.extra if self.tuner is not None else self._extra

    @extra.setter
    def extra(self, value: ExtraCompute) -> None:
        self._extra = value

    def start(self) -> None:
        if self.max_lr is None:
            self.max_lr = self.tuner.start()
            log.info("onecycle: max LR %.4g from the range test", self.max_lr)
        self._build()

    def _build(self) -> None:
        base_momentum, max_momentum = self.momentum_range
        self.scheduler = lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=[self.max_lr * scale for scale in self.scales], total_steps=self.total_steps,
            cycle_momentum=self.cycle_momentum, base_momentum=base_momentum, max_momentum=max_momentum,
            **self.options)

    def apply(self, step: int) -> float:
        lr = super().apply(step)
        if self.tuner is not None:
            self.tuner.lr = lr  # studies read the current LR from the tuner they built
        return lr

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["max_lr"] = self.max_lr
        if self.tuner is not None:
            state["extra"] = vars(self.tuner.extra).copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.max_lr = state["max_lr"]
        self._build()
        super().load_state_dict(state)
        if self.tuner is not None and "extra" in state:
            self.tuner.extra = ExtraCompute(**state["extra"])
            self.tuner.max_lr = self.max_lr


def _has_momentum(optimizer: torch.optim.Optimizer) -> bool:
    defaults = optimizer.defaults
    return "betas" in defaults or defaults.get("momentum", 0) > 0


class PlateauSchedule(LRSchedule):
    """ReduceLROnPlateau on `monitor`, stepped with each evaluation's value of that metric.

    `monitor=None` picks the task's validation loss (the first metric named *_loss) at the first
    evaluation. A `mode` that contradicts the metric's direction raises ConfigError.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule_cfg):
        self.optimizer = optimizer
        self.monitor: str | None = schedule_cfg.monitor
        self.mode = check_plateau_mode(self.monitor, schedule_cfg.mode)
        self.scheduler = lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=self.mode, factor=schedule_cfg.factor, patience=schedule_cfg.patience,
            threshold=schedule_cfg.threshold, threshold_mode=schedule_cfg.threshold_mode,
            cooldown=schedule_cfg.cooldown, min_lr=schedule_cfg.min_lr)
        self.extra = ExtraCompute()

    def apply(self, step: int) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        if self.monitor is None:
            self.monitor = next((name for name in metrics if name.endswith("_loss")), None)
            if self.monitor is None:
                raise ConfigError(f"schedule=plateau found no validation loss among the metrics {sorted(metrics)}; "
                                  "set schedule.monitor=<metric> and schedule.mode=min|max")
            log.info("plateau: monitoring %s (mode %s)", self.monitor, self.mode)
        if self.monitor not in metrics:
            raise ConfigError(f"schedule.monitor={self.monitor!r} is not an evaluation metric of this task; "
                              f"choose one of {sorted(metrics)}")
        before = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step(metrics[self.monitor])
        after = self.optimizer.param_groups[0]["lr"]
        if after != before:
            log.info("plateau: %s stopped improving; LR %.4g -> %.4g", self.monitor, before, after)

    def state_dict(self) -> dict:
        return {"monitor": self.monitor, "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.monitor = state["monitor"]
        self.scheduler.load_state_dict(state["scheduler"])


def check_plateau_mode(monitor: str | None, mode: str | None) -> str:
    """Return the plateau mode for `monitor`; raise ConfigError when `mode` contradicts the metric."""
    if mode not in (None, "min", "max"):
        raise ConfigError(f"invalid value schedule.mode={mode!r}; expected null, min or max")
    # monitor=None means the validation loss, which improves downwards.
    direction = "min" if monitor is None else metric_direction(monitor)
    if direction is None:
        if mode is None:
            raise ConfigError(f"schedule.monitor={monitor!r} has no known direction; "
                              "set schedule.mode=min (lower is better) or schedule.mode=max")
        return mode
    if mode is not None and mode != direction:
        watched = monitor or "the validation loss"
        raise ConfigError(f"schedule.mode={mode} contradicts schedule.monitor={watched}, which improves when it "
                          f"{'falls' if direction == 'min' else 'rises'}; use schedule.mode={direction}")
    return direction


def build_peer_schedule(schedule_cfg, optimizer: torch.optim.Optimizer, total_steps: int,
                        make_tuner: Callable[[AutoLRConfig], AutoLR] | None) -> LRSchedule:
    """Build the peer schedule that `schedule_cfg.kind` names: plateau, cosine, onecycle or knee."""
    kind = schedule_cfg.kind
    if kind == "plateau":
        return PlateauSchedule(optimizer, schedule_cfg)
    if kind == "cosine":
        return CosineSchedule(optimizer, total_steps, schedule_cfg.warmup_fraction, schedule_cfg.eta_min)
    if kind == "knee":
        return KneeSchedule(optimizer, total_steps, schedule_cfg.explore_fraction, schedule_cfg.warmup_fraction)
    if kind == "onecycle":
        tuner = None
        if schedule_cfg.max_lr is None and make_tuner is not None:
            # The tuner only runs its range test here: it never searches, because update() is never called.
            config = autolr_config(_range_test_only(schedule_cfg))
            tuner = make_tuner(config)
            # NOTE: the runner opens range_test.csv only under schedule=autolr, so its callback
            # would fail here; the sweep is logged, and the max LR is kept in the schedule state.
            tuner.on_range_test = None
        return OneCycleSchedule(optimizer, total_steps, schedule_cfg, tuner)
    raise ConfigError(f"unknown peer schedule kind {kind!r}; choose one of {', '.join(PEER_SCHEDULE_KINDS)}")


def _range_test_only(schedule_cfg):
    """Return a config with the onecycle schedule's range-test options and nothing else AutoLR would reject."""
    from omegaconf import OmegaConf

    return OmegaConf.create({"range_test": OmegaConf.to_container(schedule_cfg.range_test, resolve=True)})
