"""Quadratic fit of loss against LR and the decision rule built on it.

The loss after a few trial steps is modelled as L(lr) = a*lr^2 + b*lr + c, fitted by least
squares in linear LR. With a > 0 the minimum -b/(2a) is the proposal, clamped to a trust region
around the sampled LRs, because a minimum far outside them is an extrapolation the samples do
not support. Otherwise, or when held-out samples show the fit is poor, the best sample wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuadraticFit:
    """Coefficients of L(lr) = a*lr^2 + b*lr + c and the fit's error on held-out samples."""

    a: float
    b: float
    c: float
    test_error: float  # max |prediction - loss| over test samples, as a fraction of the fitted loss range

    def predict(self, lr) -> np.ndarray:
        lr = np.asarray(lr, dtype=float)
        return self.a * lr**2 + self.b * lr + self.c

    @property
    def minimum(self) -> float | None:
        """LR of the minimum, or None when the parabola is not convex."""
        return -self.b / (2 * self.a) if self.a > 0 else None


@dataclass(frozen=True)
class Decision:
    """The LR a search picks and why."""

    lr: float
    decision: str  # fit, fit_clamped, best_sample or keep
    reason: str    # empty for an accepted fit; otherwise the fallback's cause
    proposal: float | None = None  # the clamped minimum of the fit, before any verification


def fit_quadratic(fit_lrs, fit_losses, test_lrs=(), test_losses=()) -> QuadraticFit:
    """Least-squares quadratic through (lr, loss) samples, tested on the held-out ones.

    Raises ValueError with fewer than 3 fit samples, which cannot determine a quadratic.
    """
    x = np.asarray(fit_lrs, dtype=float)
    y = np.asarray(fit_losses, dtype=float)
    if x.size < 3:
        raise ValueError(f"a quadratic fit needs at least 3 samples, got {x.size}")

    # Scale LRs to about 1 so the normal equations stay well conditioned at LRs like 1e-4.
    scale = float(np.max(np.abs(x))) or 1.0
    a_s, b_s, c = np.polyfit(x / scale, y, deg=2)
    a, b = a_s / scale**2, b_s / scale

    test_error = 0.0
    if len(test_lrs):
        predicted = a * np.asarray(test_lrs, float) ** 2 + b * np.asarray(test_lrs, float) + c
        spread = float(np.ptp(y)) or 1e-12
        test_error = float(np.max(np.abs(predicted - np.asarray(test_losses, float)))) / spread
    return QuadraticFit(float(a), float(b), float(c), test_error)


def choose_lr(samples: list[tuple[float, float, str]], current_lr: float, *, max_lr: float,
              min_lr: float, trust_factor: float, max_test_error: float
              ) -> tuple[Decision, QuadraticFit | None]:
    """Pick the next LR from (lr, loss, role) samples, role being "fit" or "test".

    Non-finite losses are dropped before anything else: a diverged candidate is never fitted.
    """
    finite = [(lr, loss, role) for lr, loss, role in samples if math.isfinite(loss)]
    fit_points = [(lr, loss) for lr, loss, role in finite if role == "fit"]
    test_points = [(lr, loss) for lr, loss, role in finite if role == "test"]

    def clip(lr: float) -> float:
        return min(max(lr, min_lr), max_lr)

    if not finite:
        return Decision(clip(current_lr), "keep", "no finite samples"), None
    best_lr = min(finite, key=lambda item: item[1])[0]
    if len(fit_points) < 3:
        return Decision(clip(best_lr), "best_sample", f"only {len(fit_points)} finite fit samples"), None

    fit = fit_quadratic(*zip(*fit_points), *(zip(*test_points) if test_points else ((), ())))
    if fit.minimum is None:
        return Decision(clip(best_lr), "best_sample", f"non-positive curvature a={fit.a:.3g}"), fit
    if fit.test_error > max_test_error:
        reason = f"poor fit: test error {fit.test_error:.2f} > {max_test_error:.2f} of the loss range"
        return Decision(clip(best_lr), "best_sample", reason), fit

    sampled = [lr for lr, _ in fit_points]
    low, high = min(sampled) / trust_factor, max(sampled) * trust_factor
    proposal = clip(min(max(fit.minimum, low), high))
    if proposal != fit.minimum:
        reason = f"minimum {fit.minimum:.3g} clamped to [{max(low, min_lr):.3g}, {min(high, max_lr):.3g}]"
        return Decision(proposal, "fit_clamped", reason, proposal), fit
    return Decision(proposal, "fit", "", proposal), fit
