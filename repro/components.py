"""Builds the parts every command shares (task, model, optimizer, train step) from a config.

`repro run` and the studies (range test, fit study, noise study) start from the same parts, so a
study measures exactly the model, data and optimizer that a run would train.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import Subset, TensorDataset

from .autolr import make_train_step
from .autolr.batches import BatchSource
from .distributed import SINGLE, DistEnv, ShardedBatchSource, per_rank_batch_size, wrap_model
from .errors import ConfigError
from .optim import build_optimizer
from .tasks import Task, build_task
from .train.device import resolve_device
from .train.precision import PrecisionSetup, check_precision, setup_precision
from .validate import validate_config

log = logging.getLogger(__name__)


@dataclass
class Components:
    """The task (data, model, loss, metrics), its optimizer and the step both loop and tuner use."""

    task: Task
    optimizer: torch.optim.Optimizer
    train_step: Callable[[Any], torch.Tensor]
    device: torch.device
    batch_size: int
    steps_per_epoch: int
    total_steps: int
    # Data parallelism and precision; the defaults describe a single fp32 process.
    dist: DistEnv = SINGLE
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None  # task.loss under autocast
    precision: PrecisionSetup | None = None

    def batch_source(self) -> BatchSource:
        """AutoLR's batches: under data parallelism, this rank's slices of the global batches."""
        source = self.task.batch_source(self.batch_size)
        return ShardedBatchSource(source, self.dist) if self.dist.enabled else source


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(cfg: DictConfig) -> torch.device:
    """Validate the config, pick the device and thread count, and seed every RNG."""
    validate_config(cfg)
    check_scale_options(cfg.trainer)
    device = resolve_device(cfg.trainer.device)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    seed_everything(cfg.seed)
    return device


def check_scale_options(trainer_cfg) -> None:
    """Reject non-boolean values of the data-parallel and precision switches in one line each."""
    check_precision(trainer_cfg.get("precision", "fp32"))
    for key in ("channels_last", "sync_batchnorm", "auto_resume"):
        value = trainer_cfg.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"invalid value trainer.{key}={value!r}; use true or false")


def _limit_examples(task: Task, max_train: int | None, max_test: int | None) -> None:
    """Keep the first examples of each split, for smoke runs and tests (null keeps all)."""
    for attribute, limit in (("train_set", max_train), ("test_set", max_test)):
        if limit is None:
            continue
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"invalid value dataset.max_{attribute.split('_')[0]}_examples={limit!r}; "
                              "expected null or an integer >= 1")
        dataset = getattr(task, attribute)
        if len(dataset) <= limit:
            continue
        if isinstance(dataset, TensorDataset):
            setattr(task, attribute, TensorDataset(*(tensor[:limit] for tensor in dataset.tensors)))
        else:
            setattr(task, attribute, Subset(dataset, range(limit)))


def build_components(cfg: DictConfig, device: torch.device, dist: DistEnv = SINGLE) -> Components:
    """Load the data, build the model and optimizer. Raises ReproError on bad input.

    Under data parallelism (`dist.enabled`) the train step calls a DistributedDataParallel wrapper
    of `task.model`, whose BatchNorm layers then use global-batch statistics unless
    `trainer.sync_batchnorm` is false. `task.model` stays the unwrapped module.
    """
    log.info("building %s data, %s model, %s optimizer on %s", cfg.dataset.name, cfg.model.name, cfg.opt.name, device)
    task = build_task(cfg, device)
    _limit_examples(task, cfg.dataset.get("max_train_examples"), cfg.dataset.get("max_test_examples"))
    precision = cfg.trainer.get("precision", "fp32")
    channels_last = bool(cfg.trainer.get("channels_last", False))
    check_precision(precision)
    batch_size = cfg.trainer.batch_size
    per_rank_batch_size(batch_size, dist)
    if channels_last:
        task.model.to(memory_format=torch.channels_last)
    trained = wrap_model(task.model, device, dist, bool(cfg.trainer.get("sync_batchnorm", True)))
    optimizer = build_optimizer(cfg.opt, task.model.parameters())
    steps_per_epoch = task.steps_per_epoch(batch_size)
    if steps_per_epoch == 0:
        raise ConfigError(f"trainer.batch_size={batch_size} exceeds the {len(task.train_set)} training examples "
                          f"of {cfg.dataset.name}; use a smaller batch size")
    if precision == "fp32" and not channels_last and not dist.enabled:
        # The plain path, unchanged: single-process fp32 runs stay bit for bit as before.
        return Components(task, optimizer, make_train_step(task.model, optimizer, task.loss), device, batch_size,
                          steps_per_epoch, steps_per_epoch * cfg.trainer.epochs)
    setup = setup_precision(trained, optimizer, task.loss, precision, channels_last, device)
    return Components(task, optimizer, setup.train_step, device, batch_size, steps_per_epoch,
                      steps_per_epoch * cfg.trainer.epochs, dist, setup.loss_fn, setup)
