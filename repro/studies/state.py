"""A training run that a study pauses at chosen steps to measure, trained as `repro run` trains.

The model, optimizer, schedule, batch order (one shuffle per epoch from (seed, epoch)) and step
function are those of `repro run` with the same overrides. So the state at epoch E matches the
run's state at epoch E, up to floating-point nondeterminism. Nothing is evaluated or logged per
epoch: a study only needs the training state.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig

from ..autolr import AutoLR, AutoLRConfig
from ..components import build_components
from ..errors import ConfigError, DivergedError
from ..schedules import build_schedule
from ..train.checkpoint import CHECKPOINT_NAME, set_rng_states
from ..train.loop import epoch_generator

log = logging.getLogger(__name__)


class TrainingState:
    """The components of one run plus a cursor through its training steps."""

    def __init__(self, cfg: DictConfig, device: torch.device):
        self.cfg = cfg
        self.parts = build_components(cfg, device)
        self.task = self.parts.task
        self.model = self.task.model
        self.optimizer = self.parts.optimizer
        self.train_step = self.parts.train_step
        self.steps_per_epoch = self.parts.steps_per_epoch
        self.tuner: AutoLR | None = None

        def make_tuner(config: AutoLRConfig) -> AutoLR:
            self.tuner = AutoLR(self.model, self.optimizer, self.task.loss, self.parts.batch_source(),
                                self.parts.total_steps, config, train_step=self.train_step, seed=cfg.seed)
            return self.tuner

        self.schedule = build_schedule(cfg.schedule, self.optimizer, cfg.opt.lr, self.steps_per_epoch,
                                       self.parts.total_steps, make_tuner)
        self.step = 0
        self.training_steps = 0  # optimizer steps this study took to reach its points
        self._started = False
        self._loader_epoch: int | None = None
        self._batches = None

        if cfg.study.checkpoint:
            self._load_checkpoint(cfg.study.checkpoint, device)

    def step_at(self, epoch: float) -> int:
        """Return the training step reached after `epoch` epochs (fractions allowed)."""
        return int(round(epoch * self.steps_per_epoch))

    def advance_to(self, target: int) -> None:
        """Train until `target` steps are done. Raises DivergedError on a non-finite loss."""
        if target < self.step:
            raise ConfigError(f"study point at step {target} comes before the starting step {self.step} "
                              f"(epoch {self.step / self.steps_per_epoch:g} of study.checkpoint); "
                              "choose study epochs at or after the checkpoint's epoch")
        if target == self.step:
            return
        self._ensure_started()
        log.info("training from step %d to step %d (epoch %.3g)", self.step, target, target / self.steps_per_epoch)
        self.model.train()
        window: list[tuple[int, float, torch.Tensor]] = []
        log_every = self.cfg.trainer.log_every
        while self.step < target:
            batch = self._next_batch()
            lr = self.schedule.apply(self.step)
            window.append((self.step, lr, self.train_step(self.task.to_device(batch))))
            self.step += 1
            self.training_steps += 1
            if len(window) == log_every or self.step == target:
                self._check_finite(window)
                window = []

    def current_lr(self) -> float:
        """Return the LR the next training step would use."""
        self._ensure_started()
        if self.tuner is not None:
            return float(self.tuner.lr)
        lr_at = getattr(self.schedule, "lr_at", None)
        if lr_at is not None:
            return float(lr_at(self.step))
        return float(self.optimizer.param_groups[0]["lr"])

    def candidate_cap(self, study_cap: float | None) -> float:
        """Return the highest candidate LR: the tuner's max LR under AutoLR, else study.autolr.max_lr or inf."""
        if self.tuner is not None and self.tuner.max_lr is not None:
            return float(self.tuner.max_lr)
        return math.inf if study_cap is None else float(study_cap)

    def autolr_extra(self) -> dict:
        """Return the range-test and search work of an AutoLR schedule while training (zeros otherwise)."""
        extra = self.schedule.extra
        return {"train_steps": extra.train_steps, "forward_batches": extra.forward_batches}

    # -- internals ---------------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if not self._started:
            self.schedule.start()  # AutoLR runs its range test here, and the other schedules do nothing
            self._started = True

    def _next_batch(self):
        epoch, in_epoch = divmod(self.step, self.steps_per_epoch)
        if self._loader_epoch != epoch:
            loader = self.task.train_loader(self.cfg.trainer.batch_size, epoch_generator(self.cfg.seed, epoch),
                                            self.cfg.trainer.num_workers)
            self._batches = iter(loader)
            self._loader_epoch = epoch
            for _ in range(in_epoch):  # a start in mid-epoch skips the batches already trained on
                next(self._batches)
        batch = next(self._batches)
        if in_epoch == self.steps_per_epoch - 1:
            self._loader_epoch = None  # the next step opens the next epoch's shuffle
        return batch

    def _check_finite(self, window: list[tuple[int, float, torch.Tensor]]) -> None:
        values = torch.stack([loss.float() for _, _, loss in window]).cpu().tolist()
        for (step, lr, _), value in zip(window, values):
            if not math.isfinite(value):
                raise DivergedError(f"training loss became {value} at step {step} (lr {lr:.4g}) before the "
                                    "study point; lower the LR (opt.lr=...)", step, lr)

    def _load_checkpoint(self, path: str, device: torch.device) -> None:
        file = Path(path).expanduser()
        if file.is_dir():
            file = file / CHECKPOINT_NAME
        if not file.is_file():
            raise ConfigError(f"study.checkpoint={path}: {file} not found; pass a run folder that kept its "
                              "checkpoint (trainer.keep_checkpoint=true) or the checkpoint.pt itself")
        checkpoint = torch.load(file, map_location=device, weights_only=False)
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.schedule.load_state_dict(checkpoint["schedule"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise ConfigError(f"study.checkpoint={path} does not match the composed model, optimizer or "
                              f"schedule ({type(error).__name__}: {str(error).splitlines()[0]}); pass the "
                              "run's dataset, model, opt and schedule overrides") from error
        set_rng_states(checkpoint["rng"])
        self.step = int(checkpoint["step"])
        self._started = True  # the checkpoint contains the schedule's state after its start
        log.info("loaded %s: epoch %s, step %d", file, checkpoint.get("epoch"), self.step)
