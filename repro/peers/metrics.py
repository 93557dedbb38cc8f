"""The direction in which each evaluation metric improves, read from its name (test_loss, test_acc, em)."""

from __future__ import annotations

import re

# Last word of a metric name -> "min" (lower is better) or "max" (higher is better).
LOWER_IS_BETTER = ("loss", "nll", "ppl", "perplexity", "error", "err")
HIGHER_IS_BETTER = ("acc", "accuracy", "bleu", "em", "f1")

# The generalisation metric `repro compare` ranks by, in order of preference, when none is given.
PREFERRED_METRICS = ("test_acc", "em", "test_bleu", "valid_ppl", "test_loss", "valid_loss", "eval_loss")


def metric_direction(name: str) -> str | None:
    """Return "min" or "max" for a metric named like the task columns, or None when the name is unknown."""
    last = name.lower().rsplit("_", 1)[-1]
    if last in LOWER_IS_BETTER:
        return "min"
    if last in HIGHER_IS_BETTER or re.fullmatch(r"top\d+", last):
        return "max"
    return None


def is_better(value: float, reference: float, direction: str) -> bool:
    """Return whether `value` is at least as good as `reference` under `direction`."""
    return value <= reference if direction == "min" else value >= reference


def default_metric(columns) -> str | None:
    """Return the first of PREFERRED_METRICS among `columns`, or None."""
    return next((name for name in PREFERRED_METRICS if name in columns), None)
