"""`repro fit-study`: how well the tuner's quadratic describes the loss against LR.

At each training point the loss after the tuner's trial steps is measured at AutoLR's own
candidates (fit and held-out) and on a dense log-spaced grid reaching far past them, all on the
same trial batches and superbatch. The quadratic is fitted to AutoLR's fit candidates only, as
the tuner fits it, and every other sample tests it. The true loss at the fitted minimum is
measured too. These are the data of the AutoLR paper's quadratic-fit figures (Kwatra et al.,
"AutoLR: A Method for Automatic Tuning of Learning Rate", figures 1, 5 and 6).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..autolr import AutoLRConfig, QuadraticFit, candidate_lrs, fit_quadratic

log = logging.getLogger(__name__)


@dataclass
class FitPoint:
    """Samples, fit and verdicts at one training point."""

    current_lr: float
    fit_samples: list[tuple[float, float]]         # AutoLR's fit candidates: (lr, loss)
    heldout_samples: list[tuple[float, float]]     # AutoLR's held-out candidates
    grid_samples: list[tuple[float, float]]        # the dense grid
    fit: QuadraticFit | None = None
    minimum_lr: float | None = None
    minimum_inside: bool | None = None
    predicted_at_minimum: float | None = None
    true_at_minimum: float | None = None
    test_error: float | None = None                # within the tuner's trust region, see `fit_point`
    inside_max_error: float | None = None          # largest grid error inside the fitted LR range
    agreement_lrs: tuple[float, float] | None = None  # grid LRs around the fit range where the fit agrees
    notes: list[str] = field(default_factory=list)

    @property
    def fitted_range(self) -> tuple[float, float]:
        lrs = [lr for lr, _ in self.fit_samples]
        return min(lrs), max(lrs)

    def rows(self) -> list[tuple[float, float, str]]:
        """Return (lr, loss, role) of every sample, role being fit, test or true_at_minimum."""
        rows = [(lr, loss, "fit") for lr, loss in self.fit_samples]
        rows += [(lr, loss, "test") for lr, loss in self.heldout_samples + self.grid_samples]
        if self.minimum_lr is not None and self.true_at_minimum is not None:
            rows.append((self.minimum_lr, self.true_at_minimum, "true_at_minimum"))
        return rows

    def summary(self) -> dict:
        low, high = self.fitted_range
        summary = {
            "current_lr": self.current_lr, "fit_lrs": [low, high],
            "a": self.fit.a if self.fit else None, "b": self.fit.b if self.fit else None,
            "c": self.fit.c if self.fit else None,
            "minimum_lr": self.minimum_lr, "minimum_inside": self.minimum_inside,
            "predicted_loss_at_minimum": self.predicted_at_minimum, "true_loss_at_minimum": self.true_at_minimum,
            "test_error": self.test_error, "inside_max_error": self.inside_max_error,
            "agreement_lrs": list(self.agreement_lrs) if self.agreement_lrs else None,
            "notes": self.notes,
        }
        if self.agreement_lrs:
            summary["agreement_factor_below"] = low / self.agreement_lrs[0]
            summary["agreement_factor_above"] = self.agreement_lrs[1] / high
        return summary


def grid_lrs(current_lr: float, span: float, points: int) -> list[float]:
    """Return `points` log-spaced LRs from current / span to current * span."""
    return [float(lr) for lr in np.geomspace(current_lr / span, current_lr * span, points)]


def fit_point(measure: Callable[[float], float], current_lr: float, options: AutoLRConfig, cap: float,
              grid_span: float, grid_points: int, tolerance: float) -> FitPoint:
    """Measure AutoLR's candidates and the grid with `measure(lr) -> loss`, fit and test the quadratic.

    `cap` limits the candidate LRs as the tuner's max LR does (math.inf for none). The grid is not
    capped. Errors are |fit - loss| as a fraction of the loss range over the fit samples, the
    tuner's unit for max_test_error. `test_error` is the largest over the held-out candidates and
    the grid LRs inside the tuner's trust region [lowest fit LR / trust_factor, highest *
    trust_factor], where the tuner may place its proposal. A non-finite loss counts as a failed
    prediction.
    """
    fit_lrs, test_lrs = candidate_lrs(current_lr, cap, options.n_fit, options.n_test, options.spacing)
    point = FitPoint(current_lr,
                     fit_samples=[(lr, measure(lr)) for lr in fit_lrs],
                     heldout_samples=[(lr, measure(lr)) for lr in test_lrs],
                     grid_samples=[(lr, measure(lr)) for lr in grid_lrs(current_lr, grid_span, grid_points)])

    finite_fit = [(lr, loss) for lr, loss in point.fit_samples if math.isfinite(loss)]
    if len(finite_fit) < 3:
        point.notes.append(f"only {len(finite_fit)} finite fit samples: no fit")
        return point
    point.fit = fit_quadratic(*zip(*finite_fit))
    spread = float(np.ptp([loss for _, loss in finite_fit])) or 1e-12

    def error(lr: float, loss: float) -> float:
        return abs(float(point.fit.predict(lr)) - loss) / spread if math.isfinite(loss) else math.inf

    low, high = point.fitted_range
    trust_low, trust_high = low / options.trust_factor, high * options.trust_factor
    near = point.heldout_samples + [(lr, loss) for lr, loss in point.grid_samples if trust_low <= lr <= trust_high]
    point.test_error = max((error(lr, loss) for lr, loss in near), default=None)
    inside = [error(lr, loss) for lr, loss in point.grid_samples if low <= lr <= high]
    point.inside_max_error = max(inside, default=None)
    point.agreement_lrs = _agreement_band(point.grid_samples, error, low, high, tolerance)

    if point.fit.minimum is None:
        point.notes.append(f"non-positive curvature a={point.fit.a:.3g}: no minimum")
    elif point.fit.minimum <= 0:
        point.minimum_lr = point.fit.minimum
        point.minimum_inside = False
        point.notes.append(f"fitted minimum at LR {point.fit.minimum:.3g} <= 0: not measurable")
    else:
        point.minimum_lr = point.fit.minimum
        point.minimum_inside = bool(low <= point.fit.minimum <= high)
        point.predicted_at_minimum = float(point.fit.predict(point.fit.minimum))
        point.true_at_minimum = measure(point.fit.minimum)
    return point


def _agreement_band(grid: list[tuple[float, float]], error: Callable[[float, float], float], low: float,
                    high: float, tolerance: float) -> tuple[float, float]:
    """Return the widest [lo, hi] around [low, high] over which every grid LR outside [low, high] agrees.

    Walks outwards from the fitted range on each side and stops at the first grid LR whose error
    exceeds `tolerance`. The band never shrinks below the fitted range itself.
    """
    below = sorted(((lr, loss) for lr, loss in grid if lr < low), reverse=True)
    above = sorted((lr, loss) for lr, loss in grid if lr > high)
    band_low, band_high = low, high
    for lr, loss in below:
        if error(lr, loss) > tolerance:
            break
        band_low = lr
    for lr, loss in above:
        if error(lr, loss) > tolerance:
            break
        band_high = lr
    return band_low, band_high


def describe(fit_id: int, epoch: float, point: FitPoint) -> str:
    """Describe one training point in a log line: the fit, its minimum and how far it agrees."""
    if point.fit is None:
        return f"fit {fit_id} at epoch {epoch:g} (lr {point.current_lr:.3g}): {'; '.join(point.notes)}"
    low, high = point.fitted_range
    text = (f"fit {fit_id} at epoch {epoch:g} (lr {point.current_lr:.3g}, fit LRs {low:.3g}..{high:.3g}): "
            f"a={point.fit.a:.3g} b={point.fit.b:.3g} c={point.fit.c:.4g}")
    if point.minimum_lr is not None:
        where = "inside" if point.minimum_inside else "outside"
        text += f"; minimum at {point.minimum_lr:.3g} ({where} the fitted range)"
        if point.true_at_minimum is not None:
            text += f", predicted loss {point.predicted_at_minimum:.4g}, measured {point.true_at_minimum:.4g}"
    if point.test_error is not None:
        text += f"; test error {point.test_error:.2f} of the fit's loss range"
    if point.agreement_lrs:
        text += f"; fit within tolerance for LRs {point.agreement_lrs[0]:.3g}..{point.agreement_lrs[1]:.3g}"
    if point.notes:
        text += f" ({'; '.join(point.notes)})"
    return text
