"""Model builders, one per `model.arch`."""

from .vision import build_model

__all__ = ["build_model"]
