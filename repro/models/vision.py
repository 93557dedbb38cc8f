"""Image classifiers: torchvision ResNets with the stems the AutoLR paper's settings need, and a small CNN."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

ARCHS = ("resnet18", "resnet50", "small_cnn")


class SmallCNN(nn.Module):
    """Two 3x3 conv + BatchNorm + ReLU blocks, global average pooling and a linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _resnet(arch: str, stem: str, in_channels: int, num_classes: int) -> nn.Module:
    from torchvision import models

    model = getattr(models, arch)(weights=None, num_classes=num_classes)
    if stem == "cifar":
        # CIFAR stem: a 3x3 stride-1 conv and no max-pool keep 32x32 inputs at full resolution.
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif stem == "standard":
        if in_channels != 3:
            model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        raise ConfigError(f"unknown model.stem {stem!r}; choose cifar or standard")
    return model


def build_model(model_cfg) -> nn.Module:
    """Build the network that `model_cfg.arch` names, randomly initialised."""
    arch = model_cfg.arch
    if arch == "small_cnn":
        return SmallCNN(model_cfg.in_channels, model_cfg.num_classes, model_cfg.get("width", 32))
    if arch in ("resnet18", "resnet50"):
        return _resnet(arch, model_cfg.stem, model_cfg.in_channels, model_cfg.num_classes)
    raise ConfigError(f"unknown model.arch {arch!r}; choose one of {', '.join(ARCHS)}")
