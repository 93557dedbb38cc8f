"""LR-free optimizers (schedule-free SGD/AdamW, Prodigy, D-Adaptation) and the LR they actually apply.

Their `lr` is a multiplier on a step size they estimate themselves, so the LR a schedule sets is
not the LR of the update. `effective_lr` reads the step size the next `step()` will use, and
`EffectiveLRSchedule` logs that value in the `lr` columns, so LR curves compare across methods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import dadaptation
import prodigyopt
import schedulefree
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..autolr import ExtraCompute
from ..autolr.batches import BatchSource
from ..errors import ConfigError
from ..schedules import LRSchedule

log = logging.getLogger(__name__)

LR_FREE_OPTIMIZERS = ("schedulefree_sgd", "schedulefree_adamw", "prodigy", "dadapt_sgd", "dadapt_adam")


class BatchNormRecalibration:
    """Recompute BatchNorm statistics at the evaluation weights of a schedule-free optimizer.

    Schedule-free training runs forward passes at the interpolated weights y, but evaluates at the
    averaged weights x, so the running statistics gathered in training belong to the wrong weights.
    The schedulefree README (version 1.4.1, "Caveats") prescribes forward passes over about 50
    training batches in train mode after `optimizer.eval()`. Here the statistics are reset and
    averaged exactly over `batch_count` batches (momentum None), and the training statistics are
    put back by `restore()`, so evaluating never changes the training trajectory.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
                 batches: BatchSource, batch_count: int, seed: int):
        self.model = model
        self.loss_fn = loss_fn
        self.batches = batches
        self.batch_count = batch_count
        self.seed = seed
        self.norms = [module for module in model.modules()
                      if isinstance(module, _BatchNorm) and module.track_running_stats]
        self._saved: list[tuple[torch.Tensor, ...]] | None = None

    def recalibrate(self, optimizer_step: int) -> None:
        """Replace the running statistics with exact averages over training batches at the current weights."""
        if not self.norms or self.batch_count == 0:
            return
        self._saved = [(norm.running_mean.clone(), norm.running_var.clone(), norm.num_batches_tracked.clone())
                       for norm in self.norms]
        momenta = [norm.momentum for norm in self.norms]
        was_training = self.model.training
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + 500_009 + optimizer_step) % (2**63))
        cuda = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        # Forward passes in train mode draw dropout masks: keep them off the training RNG stream.
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            for norm in self.norms:
                norm.reset_running_stats()
                norm.momentum = None  # cumulative average over the batches below
            self.model.train()
            for batch in self.batches.draw(self.batch_count, generator):
                self.loss_fn(self.model, batch)
        for norm, momentum in zip(self.norms, momenta):
            norm.momentum = momentum
        self.model.train(was_training)

    def restore(self) -> None:
        """Put back the running statistics saved by the last `recalibrate`."""
        if self._saved is None:
            return
        with torch.no_grad():
            for norm, (mean, var, tracked) in zip(self.norms, self._saved):
                norm.running_mean.copy_(mean)
                norm.running_var.copy_(var)
                norm.num_batches_tracked.copy_(tracked)
        self._saved = None


class _ScheduleFreeModes:
    """eval()/train() of a schedule-free optimizer, with BatchNorm statistics recomputed for evaluation."""

    batch_norm: BatchNormRecalibration | None = None

    def eval(self):
        switching = self.param_groups[0]["train_mode"]
        super().eval()
        if switching and self.batch_norm is not None:
            self.batch_norm.recalibrate(int(self.param_groups[0]["k"]))

    def train(self):
        if not self.param_groups[0]["train_mode"] and self.batch_norm is not None:
            self.batch_norm.restore()
        super().train()


class ScheduleFreeSGD(_ScheduleFreeModes, schedulefree.SGDScheduleFree):
    """schedulefree.SGDScheduleFree with BatchNorm recalibration on eval()."""


class ScheduleFreeAdamW(_ScheduleFreeModes, schedulefree.AdamWScheduleFree):
    """schedulefree.AdamWScheduleFree with BatchNorm recalibration on eval()."""


SCHEDULE_FREE = (ScheduleFreeSGD, ScheduleFreeAdamW)


def build_lr_free_optimizer(opt_cfg, params) -> torch.optim.Optimizer:
    """Build the LR-free optimizer that `opt_cfg.name` names. Schedule-free ones start in train mode."""
    name = opt_cfg.name
    try:
        if name == "schedulefree_sgd":
            optimizer = ScheduleFreeSGD(params, lr=opt_cfg.lr, momentum=opt_cfg.momentum,
                                        weight_decay=opt_cfg.weight_decay, warmup_steps=opt_cfg.warmup_steps)
        elif name == "schedulefree_adamw":
            optimizer = ScheduleFreeAdamW(params, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps,
                                          weight_decay=opt_cfg.weight_decay, warmup_steps=opt_cfg.warmup_steps)
        elif name == "prodigy":
            optimizer = prodigyopt.Prodigy(params, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas),
                                           weight_decay=opt_cfg.weight_decay, decouple=opt_cfg.decouple,
                                           use_bias_correction=opt_cfg.use_bias_correction,
                                           safeguard_warmup=opt_cfg.safeguard_warmup, d_coef=opt_cfg.d_coef)
        elif name == "dadapt_sgd":
            optimizer = dadaptation.DAdaptSGD(params, lr=opt_cfg.lr, momentum=opt_cfg.momentum,
                                              weight_decay=opt_cfg.weight_decay)
        elif name == "dadapt_adam":
            optimizer = dadaptation.DAdaptAdam(params, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas),
                                               weight_decay=opt_cfg.weight_decay, decouple=opt_cfg.decouple,
                                               use_bias_correction=opt_cfg.use_bias_correction)
        else:
            raise ConfigError(f"unknown LR-free optimizer {name!r}; choose one of {', '.join(LR_FREE_OPTIMIZERS)}")
    except ValueError as error:  # the packages raise ValueError on out-of-range hyperparameters
        raise ConfigError(f"invalid opt={name} option: {error}") from error
    if isinstance(optimizer, SCHEDULE_FREE):
        optimizer.batch_norm_batches = opt_cfg.bn_recalibration_batches
        # schedulefree's step() raises unless the optimizer is in train mode, and it starts in eval mode.
        optimizer.train()
    return optimizer


def effective_lr(optimizer: torch.optim.Optimizer) -> float | None:
    """Return the step size the next `optimizer.step()` applies, or None for an ordinary optimizer.

    Schedule-free: lr times its linear warm-up factor. Prodigy and D-Adapt Adam: d * lr, times
    Adam's bias correction when enabled. D-Adapt SGD: d * lr / |g0|, NaN before the first step
    because |g0|, the first gradient's norm, is not known yet.
    """
    group = optimizer.param_groups[0]
    if isinstance(optimizer, (schedulefree.SGDScheduleFree, schedulefree.AdamWScheduleFree)):
        warmup, step = group["warmup_steps"], group["k"]
        return group["lr"] * (min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0)
    if isinstance(optimizer, (prodigyopt.Prodigy, dadaptation.DAdaptAdam)):
        correction = 1.0
        if group["use_bias_correction"]:
            beta1, beta2 = group["betas"]
            step = group["k"] + 1
            correction = math.sqrt(1 - beta2**step) / (1 - beta1**step)
        return group["d"] * group["lr"] * correction
    if isinstance(optimizer, dadaptation.DAdaptSGD):
        first_norm = group.get("g0_norm")
        return group["d"] * group["lr"] / first_norm if first_norm else float("nan")
    return None


class EffectiveLRSchedule(LRSchedule):
    """Any schedule driving an LR-free optimizer; `apply` returns the effective LR instead of the multiplier.

    `on_apply(lr)`, when given, receives the multiplier the schedule set (studies read it back).
    """

    def __init__(self, schedule: LRSchedule, optimizer: torch.optim.Optimizer,
                 on_apply: Callable[[float], None] | None = None):
        self.schedule = schedule
        self.optimizer = optimizer
        self.on_apply = on_apply

    @property
    def extra(self) -> ExtraCompute:
        return self.schedule.extra

    def start(self) -> None:
        self.schedule.start()

    def apply(self, step: int) -> float:
        multiplier = self.schedule.apply(step)
        if self.on_apply:
            self.on_apply(multiplier)
        return effective_lr(self.optimizer)

    def on_evaluate(self, metrics: dict[str, float]) -> None:
        self.schedule.on_evaluate(metrics)

    def state_dict(self) -> dict:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.schedule.load_state_dict(state)


def wrap_for_optimizer(schedule: LRSchedule, optimizer: torch.optim.Optimizer, make_tuner) -> LRSchedule:
    """Return `schedule` unchanged for an ordinary optimizer, else wrapped to log the effective LR.

    A schedule-free optimizer also gets its BatchNorm recalibration here.
    """
    if effective_lr(optimizer) is None:
        return schedule
    on_apply = None
    if isinstance(optimizer, SCHEDULE_FREE):
        batch_count = getattr(optimizer, "batch_norm_batches", 0)
        tuner = getattr(schedule, "tuner", None)
        if tuner is None and make_tuner is not None and batch_count > 0:
            # NOTE: build_schedule receives the model and the training batches only through the
            # tuner factory. So a tuner is built here just to carry them, and it never searches.
            from ..autolr import AutoLRConfig

            tuner = make_tuner(AutoLRConfig(max_lr=optimizer.param_groups[0]["lr"]))
            tuner.max_lr = None  # no range test ran, so studies must not read a cap from it

            def on_apply(lr: float) -> None:
                tuner.lr = lr

        if tuner is not None and batch_count > 0:
            optimizer.batch_norm = BatchNormRecalibration(tuner.model, tuner.loss_fn, tuner.batches, batch_count,
                                                          tuner.seed)
        elif batch_count > 0:
            log.warning("no model or training batches to recompute BatchNorm statistics with: evaluation uses "
                        "the statistics gathered at the training weights")
    return EffectiveLRSchedule(schedule, optimizer, on_apply)
