"""Task definitions: data, model, loss and metrics for one kind of problem."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .base import Task

TASKS = ("classification", "translation", "qa")


def build_task(cfg, device: torch.device) -> Task:
    """Build the task that `cfg.dataset.task` names, loading its data and model."""
    kind = cfg.dataset.task
    if kind == "classification":
        from .classification import ClassificationTask

        return ClassificationTask(cfg, device)
    if kind == "translation":
        from .translation import TranslationTask

        return TranslationTask(cfg, device)
    if kind == "qa":
        from .qa import QATask

        return QATask(cfg, device)
    raise ConfigError(f"unknown dataset.task {kind!r}; choose one of {', '.join(TASKS)}")


__all__ = ["Task", "build_task"]
