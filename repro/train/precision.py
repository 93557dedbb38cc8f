"""Mixed precision (`trainer.precision`) and channels-last memory format (`trainer.channels_last`).

fp32 returns the plain loss and step unchanged. bf16 runs the forward pass under autocast. fp16
runs it under autocast too and scales the loss with a GradScaler, so small gradients do not
underflow to zero.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..autolr import make_train_step
from ..errors import ConfigError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


@dataclass
class PrecisionSetup:
    """The loss, train step and evaluation context of one precision setting."""

    loss_fn: LossFn
    train_step: Callable[[Any], torch.Tensor]
    autocast: Callable[[], contextlib.AbstractContextManager]
    scaler: torch.amp.GradScaler | None = None


def check_precision(precision: str) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise ConfigError(f"invalid value trainer.precision={precision!r}; use fp32, bf16 or fp16")
    return PRECISIONS[precision]


def _to_channels_last(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor) and batch.dim() == 4 and batch.is_floating_point():
        return batch.contiguous(memory_format=torch.channels_last)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_channels_last(item) for item in batch)
    return batch


def setup_precision(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                    precision: str, channels_last: bool, device: torch.device) -> PrecisionSetup:
    """Build the loss and step for `precision`; `model` is what the step calls (a DDP wrapper or not)."""
    dtype = check_precision(precision)
    if dtype is None and not channels_last:
        return PrecisionSetup(loss_fn, make_train_step(model, optimizer, loss_fn), contextlib.nullcontext)

    def autocast() -> contextlib.AbstractContextManager:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=dtype)

    def mixed_loss(module: torch.nn.Module, batch: Any) -> torch.Tensor:
        if channels_last:
            batch = _to_channels_last(batch)
        with autocast():
            return loss_fn(module, batch)

    if dtype is not torch.float16:
        return PrecisionSetup(mixed_loss, make_train_step(model, optimizer, mixed_loss), autocast)

    scaler = torch.amp.GradScaler(device.type)

    def scaled_step(batch: Any) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = mixed_loss(model, batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skips the step when the scaled gradients hold inf or NaN
        scaler.update()
        return loss.detach()

    # NOTE: AutoLR's snapshot does not hold the GradScaler's scale, so trial steps under fp16 can
    # change the scale that training continues with. bf16 needs no scaler and has no such effect.
    return PrecisionSetup(mixed_loss, scaled_step, autocast, scaler)
