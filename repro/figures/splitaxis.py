"""Broken y-axes: the same curves in stacked panels that show different y-ranges.

A training loss falls by an order of magnitude in the first epochs and then differs between
schedules by a few percent. One panel cannot show both, so the curves are drawn 2 or 3 times, each
panel zoomed on the values of one phase of training, with break marks between the panels.
"""

from __future__ import annotations

import numpy as np

from .data import Curve

# Start of each phase as a fraction of the run, from the last phase backwards. The bottom (or,
# for a rising metric, top) panel zooms on the second half of training, a middle panel on the
# values from 10% of the run on, and the remaining panel takes everything above (or below).
PHASE_STARTS = {2: (0.5,), 3: (0.5, 0.1)}
PAD_FRACTION = 0.06
INNER_PAD_FRACTION = 0.02


def _height(low: float, high: float) -> float:
    return high - low if high > low else abs(high) * 0.02 or 1e-3


def split_ranges(curves: list[Curve], parts: int) -> list[tuple[float, float]]:
    """Y-ranges of `parts` stacked panels, top panel first, chosen from the curves' values.

    Falling curves (losses, perplexity) get the late phase in the bottom panel. Rising curves
    (accuracy, EM) get it in the top panel. When the curves barely move, so that the phases
    overlap, the full range is cut into equal slices instead.
    """
    x = np.concatenate([curve.x for curve in curves])
    values = np.concatenate([curve.values() for curve in curves])
    times = np.concatenate([np.concatenate([curve.x, curve.x]) for curve in curves])
    keep = np.isfinite(values)
    values, times = values[keep], times[keep]
    if values.size == 0:
        return [(0.0, 1.0)] * parts
    low_all, high_all = float(values.min()), float(values.max())
    if parts == 1:
        margin = PAD_FRACTION * _height(low_all, high_all)
        return [(low_all - margin, high_all + margin)]

    start, end = float(x.min()), float(x.max())
    phase_values = []  # latest phase first
    for fraction in PHASE_STARTS[parts]:
        chosen = values[times >= start + fraction * (end - start)]
        phase_values.append(chosen if chosen.size else values)
    late = phase_values[0]
    early = values[times <= start + PHASE_STARTS[parts][-1] * (end - start)]
    falling = early.size == 0 or float(np.mean(early)) >= float(np.mean(late))

    # Boundaries between panels, from the late phase outwards.
    if falling:
        edges = [float(late.min())] + [float(phase.max()) for phase in phase_values] + [high_all]
        edges[-1] = max(edges[-1], edges[-2])
    else:
        edges = [float(late.max())] + [float(phase.min()) for phase in phase_values] + [low_all]
        edges[-1] = min(edges[-1], edges[-2])
    ranges = [tuple(sorted(pair)) for pair in zip(edges[:-1], edges[1:])]  # late phase first
    heights = [high - low for low, high in ranges]
    if min(heights) <= 1e-9 * max(abs(high_all), 1.0):
        slices = np.linspace(low_all, high_all, parts + 1)
        ranges = [(float(slices[i]), float(slices[i + 1])) for i in range(parts)][::-1]
    elif falling:
        ranges = ranges[::-1]  # the late, low values go to the bottom panel
    # Margins: PAD_FRACTION of a panel's height at the outer ends of the stack, and where two
    # panels meet INNER_PAD_FRACTION of the smaller one, so that a wide panel never covers a narrow one.
    heights = [_height(low, high) for low, high in ranges]
    padded = []
    for position, (low, high) in enumerate(ranges):
        if high <= low:
            low, high = low - heights[position] / 2, high + heights[position] / 2
        above = PAD_FRACTION * heights[position] if position == 0 else \
            INNER_PAD_FRACTION * min(heights[position], heights[position - 1])
        below = PAD_FRACTION * heights[position] if position == parts - 1 else \
            INNER_PAD_FRACTION * min(heights[position], heights[position + 1])
        padded.append((low - below, high + above))
    return padded


def add_break_marks(upper, lower, size: float = 0.015) -> None:
    """Hide the spines between two stacked panels and draw diagonal marks where the axis breaks."""
    upper.spines["bottom"].set_visible(False)
    lower.spines["top"].set_visible(False)
    upper.tick_params(axis="x", which="both", bottom=False, labelbottom=False)
    lower.tick_params(axis="x", which="both", top=False)
    style = {"color": "k", "clip_on": False, "linewidth": 1}
    for x in (0.0, 1.0):
        upper.plot([x - size, x + size], [-size * 2, size * 2], transform=upper.transAxes, **style)
        lower.plot([x - size, x + size], [1 - size * 2, 1 + size * 2], transform=lower.transAxes, **style)


def split_column(figure, cell, parts: int, sharex=None):
    """Create `parts` stacked axes in one gridspec cell, sharing the x-axis, top panel first."""
    grid = cell.subgridspec(parts, 1, hspace=0.08)
    axes = []
    for row in range(parts):
        axes.append(figure.add_subplot(grid[row, 0], sharex=sharex or (axes[0] if axes else None)))
    for upper, lower in zip(axes[:-1], axes[1:]):
        add_break_marks(upper, lower)
    return axes
