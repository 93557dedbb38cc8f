"""Quadratic-fit figures (1, 5, 6): the loss vs LR samples of one search and the quadratic fitted to them.

Two files record fits. A fit study (fit_study.csv) measures a dense grid of held-out LRs and the
true loss at the unclamped minimum. An AutoLR run (autolr.csv) records each search: its fit and test
candidates and, under `verify`, the loss at the proposal, which the trust region may have clamped
away from the fitted minimum. The legend then reads "at the clamped proposal".
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np
from matplotlib.ticker import NullFormatter

from ..results.schema import AUTOLR_COLUMNS, FIT_STUDY_COLUMNS
from .base import Drawn, FigureEntry, MissingPanel, collect_missing, draw_placeholder
from .data import ResultsIndex, RunFolder, read_csv
from .settings import Missing, Need, Setting, describe_data, find_any, opt_label
from .style import FIT_SAMPLE, FITTED_CURVE, FITTED_MINIMUM, TEST_SAMPLE, TRUE_LOSS, new_figure, use_log_scale

FIT_SOURCES = (Need("fit_study"), Need("autolr"))


@dataclass
class Search:
    """One quadratic fit with its samples, read from either file."""

    label: str  # where it comes from, for the panel and the figure index
    fit: list[tuple[float, float]]
    test: list[tuple[float, float]]
    a: float
    b: float
    c: float
    true_loss: tuple[float, float] | None = None  # (lr, loss) measured at the minimum or proposal
    true_at_minimum: bool = True  # False when measured at a clamped proposal
    folders: list[RunFolder] = field(default_factory=list)
    recorded_inside: bool | None = None  # the fit study's own minimum_inside, when it wrote one

    @property
    def minimum_lr(self) -> float | None:
        return -self.b / (2 * self.a) if self.a > 0 else None

    @property
    def sampled_range(self) -> tuple[float, float]:
        lrs = [lr for lr, _ in self.fit]
        return min(lrs), max(lrs)

    @property
    def inside(self) -> bool | None:
        """Whether the fitted minimum lies within the fit samples' LRs; None without a minimum."""
        minimum = self.minimum_lr
        if minimum is None:
            return None
        if self.recorded_inside is not None:
            return self.recorded_inside
        low, high = self.sampled_range
        return low <= minimum <= high

    def outside_distance(self) -> float:
        """Return how far (in decades) the minimum lies outside the sampled LRs, 0 when inside or not positive."""
        minimum = self.minimum_lr
        if minimum is None or minimum <= 0:
            return 0.0
        low, high = self.sampled_range
        return max(math.log10(low / minimum), math.log10(minimum / high), 0.0)

    def quadratic(self, lr):
        return self.a * lr ** 2 + self.b * lr + self.c


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1")


def _points(rows) -> list[tuple[float, float]]:
    points = []
    for _, row in rows.iterrows():
        lr, loss = _number(row["lr"]), _number(row["loss"])
        if lr is not None and loss is not None and _truthy(row["finite"]):
            points.append((lr, loss))
    return points


def fit_study_searches(folder: RunFolder, root) -> list[Search]:
    frame = read_csv(folder.path / "fit_study.csv", FIT_STUDY_COLUMNS)
    searches = []
    for fit_id, rows in frame.groupby("fit_id", sort=True):
        first = rows.iloc[0]
        a, b, c = (_number(first[name]) for name in ("a", "b", "c"))
        if a is None or b is None or c is None:
            continue
        true_rows = _points(rows[rows["role"] == "true_at_minimum"])
        label = f"{folder.relative(root)}/fit_study.csv, fit {fit_id} at epoch {_number(first['epoch']) or 0:g}"
        recorded = str(first["minimum_inside"]).strip().lower()
        searches.append(Search(label, _points(rows[rows["role"] == "fit"]), _points(rows[rows["role"] == "test"]),
                               a, b, c, true_rows[0] if true_rows else None, True, [folder],
                               {"true": True, "false": False}.get(recorded)))
    return [search for search in searches if search.fit]


def autolr_searches(folder: RunFolder, root) -> list[Search]:
    frame = read_csv(folder.path / "autolr.csv", AUTOLR_COLUMNS).rename(columns={"candidate_lr": "lr"})
    searches = []
    for search_id, rows in frame.groupby("search_id", sort=True):
        first = rows.iloc[0]
        a, b, c = (_number(first[name]) for name in ("a", "b", "c"))
        if a is None or b is None or c is None:
            continue
        search = Search(f"{folder.relative(root)}/autolr.csv, search {search_id} at epoch {_number(first['epoch']) or 0:.3g}",
                        _points(rows[rows["role"] == "fit"]), _points(rows[rows["role"] == "test"]), a, b, c,
                        folders=[folder])
        verify = _points(rows[rows["role"] == "verify"])
        if verify:
            search.true_loss = verify[0]
            minimum = search.minimum_lr
            search.true_at_minimum = minimum is not None and math.isclose(verify[0][0], minimum, rel_tol=1e-6)
        if search.fit:
            searches.append(search)
    return searches


def select_search(searches: list[Search], where: str) -> Search | None:
    """Pick the search a panel shows: `inside`, `outside` (the farthest outside) or `any`.

    Searches with a measured true loss come first; otherwise the first in file order wins.
    """
    measured = [search for search in searches if search.true_loss is not None]
    for pool in (measured, searches):
        if where == "inside":
            chosen = [search for search in pool if search.inside]
        elif where == "outside":
            # A minimum at a negative LR is outside too, but one at a positive LR shows the failure better.
            chosen = sorted((search for search in pool if search.inside is False),
                            key=lambda search: (search.minimum_lr <= 0, -search.outside_distance()))
        else:
            chosen = sorted((search for search in pool if search.inside is not None), key=lambda search: not search.inside)
        if chosen:
            return chosen[0]
    return None


WHERE_TEXT = {"inside": "minimum inside the sampled LRs", "outside": "minimum outside the sampled LRs",
              "any": "a typical fit"}


@dataclass(frozen=True)
class FitPanel:
    letter: str  # "" for a one-panel figure
    settings: tuple[Setting, ...]  # the first with a matching search is drawn
    where: str  # inside, outside or any
    opts: tuple[str, ...] = ("sgd", "momentum", "adam", "adamw")


def find_search(index: ResultsIndex, panel: FitPanel) -> Search:
    """Return the search a panel shows, or raise Missing with the commands that would record one.

    Within a setting, fit-study records are preferred to the AutoLR runs' own search records.
    """
    reasons, commands = [], []
    for setting in panel.settings:
        searches = []
        for need in FIT_SOURCES:
            try:
                found = find_any(index, setting, panel.opts, (need,))
            except Missing as missing:
                commands += missing.commands if need is FIT_SOURCES[0] else []
                continue
            read = fit_study_searches if need.group == "fit_study" else autolr_searches
            searches += [search for folder in found.folders() for search in read(folder, index.root)]
        if not searches:
            reasons.append(f"{setting.label}: no completed fit_study or autolr runs")
            continue
        chosen = select_search(searches, panel.where)
        if chosen is not None:
            return chosen
        reasons.append(f"{setting.label}: none of {len(searches)} recorded fits has its {WHERE_TEXT[panel.where]}")
    raise Missing("; ".join(reasons), commands)


def draw_search(ax, search: Search, title: str) -> None:
    """Draw the samples, fitted quadratic, its minimum and the true loss there (markers in style.py)."""
    lrs = [lr for lr, _ in search.fit + search.test]
    losses = [loss for _, loss in search.fit]
    minimum = search.minimum_lr
    if minimum is not None:
        lrs.append(minimum)
    if search.true_loss:
        lrs.append(search.true_loss[0])
        losses.append(search.true_loss[1])
    log_x = use_log_scale(lrs) and min(lrs) > 0
    low, high = min(lrs), max(lrs)
    if log_x:
        grid = np.geomspace(low / 1.3, high * 1.3, 300)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on a short log axis
    else:
        margin = 0.08 * (high - low or abs(high) or 1.0)
        grid = np.linspace(low - margin, high + margin, 300)

    ax.plot(grid, search.quadratic(grid), label="fitted quadratic", **FITTED_CURVE)
    ax.plot(*zip(*search.fit), label="fit samples", **FIT_SAMPLE)
    if search.test:
        ax.plot(*zip(*search.test), label="test samples", **TEST_SAMPLE)
    if minimum is not None:
        ax.plot([minimum], [search.quadratic(minimum)], label=f"fitted minimum (LR {minimum:.3g})", **FITTED_MINIMUM)
        losses.append(search.quadratic(minimum))
    if search.true_loss:
        where = "at the fitted minimum" if search.true_at_minimum else "at the clamped proposal"
        ax.plot([search.true_loss[0]], [search.true_loss[1]], label=f"true loss {where}", **TRUE_LOSS)

    # The y-range follows the fit samples, the minimum and the true loss. Held-out samples far
    # outside it are clipped, because a wide grid reaches diverging LRs that would flatten the fit.
    spread = max(losses) - min(losses) or abs(max(losses)) * 0.05 or 1.0
    test_losses = [loss for _, loss in search.test]
    low = min([min(losses) - 0.25 * spread] + [loss - 0.05 * spread for loss in test_losses
                                              if loss > min(losses) - 1.5 * spread])
    high = max([max(losses) + 0.25 * spread] + [loss + 0.05 * spread for loss in test_losses
                                               if loss < max(losses) + 1.5 * spread])
    ax.set_ylim(low, high)
    clipped = sum(not low <= loss <= high for loss in test_losses)
    if clipped:
        ax.annotate(f"{clipped} test sample(s) beyond the y-range", (0.01, 0.06), xycoords="axes fraction",
                    fontsize=6, color="0.4")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss after the trial steps")
    ax.set_title(textwrap.fill(title, 52), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


@dataclass
class FitFigure(FigureEntry):
    """One quadratic fit per panel, chosen by where its minimum lies."""

    number: int
    stem: str
    caption: str
    panels: tuple[FitPanel, ...]

    def draw(self, index) -> Drawn:
        chosen: dict[str, Search | MissingPanel] = {}
        for panel in self.panels:
            name = f"({panel.letter})" if panel.letter else ""
            try:
                chosen[panel.letter] = find_search(index, panel)
            except Missing as missing:
                chosen[panel.letter] = MissingPanel(name, missing.reason, missing.commands)
        missing = [value for value in chosen.values() if isinstance(value, MissingPanel)]
        collect_missing(missing, len(self.panels))

        figure = new_figure(5.0 * len(self.panels), 4.4)
        sources = []
        for position, panel in enumerate(self.panels):
            ax = figure.add_subplot(1, len(self.panels), position + 1)
            result = chosen[panel.letter]
            if isinstance(result, MissingPanel):
                labels = "/".join(setting.label for setting in panel.settings)
                draw_placeholder(ax, result, f"{result.panel} {labels}: no recorded fit")
                continue
            folders = result.folders
            sources.append(result.label)
            prefix = f"({panel.letter}) " if panel.letter else ""
            opt = opt_label(folders[0].opt)
            draw_search(ax, result, f"{prefix}{describe_data(folders)}, {opt}: {WHERE_TEXT[panel.where]}")
            ax.set_gid(f"{panel.letter or 'fit'}:{panel.where}")
            ax.annotate(result.label.split("/")[-1], (0.01, 0.01), xycoords="axes fraction", fontsize=6, color="0.4")
        figure.suptitle(f"Figure {self.number}: {self.caption}", fontsize=11)
        figure.tight_layout()
        return Drawn(figure, sources, missing)
