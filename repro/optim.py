"""Optimizers of the AutoLR paper's settings: SGD, SGD with momentum, Adam (and AdamW for BERT)."""

from __future__ import annotations

import torch

from .errors import ConfigError
from .peers.lr_free import LR_FREE_OPTIMIZERS, build_lr_free_optimizer

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")


def build_optimizer(opt_cfg, params) -> torch.optim.Optimizer:
    """Build the optimizer that `opt_cfg.name` names, at LR `opt_cfg.lr`."""
    name = opt_cfg.name
    if name in ("sgd", "momentum"):
        return torch.optim.SGD(params, lr=opt_cfg.lr, momentum=opt_cfg.momentum,
                               weight_decay=opt_cfg.weight_decay, nesterov=opt_cfg.nesterov)
    if name == "adam":
        return torch.optim.Adam(params, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps,
                                weight_decay=opt_cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=opt_cfg.lr, betas=tuple(opt_cfg.betas), eps=opt_cfg.eps,
                                 weight_decay=opt_cfg.weight_decay)
    if name in LR_FREE_OPTIMIZERS:
        return build_lr_free_optimizer(opt_cfg, params)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS + LR_FREE_OPTIMIZERS)}")
