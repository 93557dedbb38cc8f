"""Training-curve figures: split-axis curves per setting (2, 3, 9-20) and the summary figure 4."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from matplotlib.gridspec import GridSpec
from matplotlib.lines import Line2D

from ..errors import DataError
from ..results.schema import EPOCH_HEAD
from .base import Drawn, FigureEntry, MissingPanel, collect_missing, draw_placeholder
from .data import Curve, RunFolder, epoch_columns, epochs_frame, mean_curve, steps_frame
from .settings import PAPER, Found, Missing, Need, Setting, describe_data, find_runs, opt_label
from .splitaxis import split_column, split_ranges
from .style import LR_LINESTYLE, SCHEDULE_COLOURS, SPREAD_ALPHA, new_figure, use_log_scale

# Axis labels of the epochs.csv columns that figures draw.
COLUMN_LABELS = {
    "train_loss": "training loss",
    "test_loss": "test loss",
    "test_acc": "test top-1 accuracy (%)",
    "test_top5": "test top-5 accuracy (%)",
    "train_ppl": "training perplexity",
    "valid_loss": "validation loss",
    "valid_ppl": "validation perplexity",
    "em": "exact match (%)",
    "f1": "F1 (%)",
}


@dataclass(frozen=True)
class Line:
    """One curve of a figure: the runs it averages and how its legend names them."""

    key: str  # baseline, autolr, constant or drop; also picks the colour
    need: Need

    def label(self, folders: list[RunFolder]) -> str:
        first = folders[0]
        lr = first.config_value("opt.lr")
        if self.key == "baseline":
            text = "baseline"
        elif self.key == "autolr":
            text = "AutoLR"
        elif self.key == "constant":
            text = f"constant LR {lr:g}" if lr is not None else "constant LR"
        else:
            gamma = first.config_value("schedule.gamma", 0.1)
            milestones = first.config_value("schedule.milestones") or []
            at = ", ".join(str(epoch) for epoch in milestones)
            text = f"LR {lr:g}, x{gamma:g} at epoch {at}" if lr is not None else f"LR dropped at epoch {at}"
        if len(folders) > 1:
            text += f" (mean +- std, {len(folders)} seeds)"
        return text


BASELINE = Line("baseline", Need("baseline"))
AUTOLR = Line("autolr", Need("autolr"))
PAIR = (BASELINE, AUTOLR)


def pick_column(folders: list[RunFolder], alternatives: tuple[str, ...]) -> str:
    """Return the first of `alternatives` that every folder's epochs.csv has; raise Missing if none.

    A header without the fixed leading columns is a broken file, not a task without that metric,
    so it raises DataError.
    """
    for folder in folders:
        header = epoch_columns(folder)
        if tuple(header[:len(EPOCH_HEAD)]) != EPOCH_HEAD:
            raise DataError(f"{folder.path / 'epochs.csv'} starts with columns {', '.join(header[:4])}, "
                            f"expected {', '.join(EPOCH_HEAD)}; rerun that run or move its folder out of results/")
    for column in alternatives:
        if all(column in epoch_columns(folder) for folder in folders):
            return column
    without = next(folder for folder in folders
                   if not any(column in epoch_columns(folder) for column in alternatives))
    raise Missing(f"{without.path / 'epochs.csv'} has no column {' or '.join(alternatives)} "
                  f"(columns: {', '.join(epoch_columns(without))})", [])


def metric_curve(folders: list[RunFolder], column: str) -> Curve:
    return mean_curve([epochs_frame(folder) for folder in folders], "epoch", column)


def lr_curve(folders: list[RunFolder]) -> Curve:
    """Average the LR per logged step (steps.csv), which shows AutoLR's changes inside an epoch."""
    try:
        frames = [steps_frame(folder) for folder in folders]
    except DataError:
        frames = [epochs_frame(folder) for folder in folders]
    return mean_curve(frames, "epoch", "lr")


def draw_curve(ax, curve: Curve, colour: str, label: str | None, linestyle: str = "-") -> None:
    ax.plot(curve.x, curve.mean, color=colour, linestyle=linestyle, linewidth=1.4, label=label)
    if curve.seeds > 1:
        ax.fill_between(curve.x, curve.low, curve.high, color=colour, alpha=SPREAD_ALPHA, linewidth=0)


def draw_lr(ax, curves: dict[str, Curve]) -> None:
    """Draw each schedule's LR dashed on `ax`, on a log scale when the LRs span a decade."""
    for key, curve in curves.items():
        ax.plot(curve.x, curve.mean, color=SCHEDULE_COLOURS[key], linestyle=LR_LINESTYLE, linewidth=1.2,
                drawstyle="steps-post")
    values = [value for curve in curves.values() for value in curve.mean]
    if use_log_scale(values):
        ax.set_yscale("log")


@dataclass
class CurvesFigure(FigureEntry):
    """Curves of one setting vs epoch: one split-axis column per quantity, plus an LR panel.

    `quantities` lists, per column, the epochs.csv columns that may supply it, first found wins
    (e.g. training perplexity where a task logs it, else training loss).
    """

    number: int
    stem: str
    caption: str
    setting: Setting
    opts: tuple[str, ...]
    quantities: tuple[tuple[str, ...], ...]
    parts: int
    lines: tuple[Line, ...] = PAIR
    show_lr: bool = True

    def draw(self, index) -> Drawn:
        found = find_runs(index, self.setting, self.opts, {line.key: line.need for line in self.lines})
        all_folders = found.folders()
        columns = [pick_column(all_folders, alternatives) for alternatives in self.quantities]
        ncols = len(columns) + (1 if self.show_lr else 0)
        figure = new_figure(3.9 * ncols, 1.5 * self.parts + 2.2)
        grid = GridSpec(1, ncols, figure=figure, wspace=0.32)
        labels = {line.key: line.label(found.runs[line.key]) for line in self.lines}

        first_axes = None
        for position, column in enumerate(columns):
            curves = {line.key: metric_curve(found.runs[line.key], column) for line in self.lines}
            axes = split_column(figure, grid[0, position], self.parts, sharex=first_axes)
            first_axes = first_axes or axes[0]
            ranges = split_ranges(list(curves.values()), self.parts)
            for part, (ax, limits) in enumerate(zip(axes, ranges)):
                for key, curve in curves.items():
                    draw_curve(ax, curve, SCHEDULE_COLOURS[key], labels[key] if position == part == 0 else None)
                ax.set_ylim(*limits)
                ax.set_gid(f"{column}/{part}")
                ax.grid(alpha=0.3)
            axes[0].set_title(COLUMN_LABELS.get(column, column), fontsize=10)
            axes[len(axes) // 2].set_ylabel(COLUMN_LABELS.get(column, column))
            axes[-1].set_xlabel("epoch")

        if self.show_lr:
            ax = figure.add_subplot(grid[0, -1], sharex=first_axes)
            draw_lr(ax, {line.key: lr_curve(found.runs[line.key]) for line in self.lines})
            ax.yaxis.tick_right()
            ax.yaxis.set_label_position("right")
            ax.set_ylabel("learning rate (dashed)")
            ax.set_title("learning rate", fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_gid("lr")
            ax.grid(alpha=0.3)

        caption = self.caption
        if found.source.scale != PAPER:
            caption = f"stand-in for {self.setting.label}; {caption}"
        figure.suptitle(f"Figure {self.number}: {describe_data(all_folders)}, {opt_label(found.opt)}\n{caption}",
                        fontsize=11, y=1.0, va="bottom")
        figure.legend(loc="upper center", ncol=len(self.lines), bbox_to_anchor=(0.5, 0.0), frameon=False)
        return Drawn(figure, [folder.relative(index.root) for folder in all_folders])


@dataclass(frozen=True)
class SummaryPanel:
    letter: str
    setting: Setting
    opts: tuple[str, ...]
    column: tuple[str, ...]  # epochs.csv columns that may supply the metric, first found wins


@dataclass
class SummaryFigure(FigureEntry):
    """Metric (solid, left axis) and LR (dashed, right axis) of several settings side by side.

    Panels without runs are drawn as labelled placeholders; the figure is skipped when no panel
    has runs.
    """

    number: int
    stem: str
    caption: str
    panels: tuple[SummaryPanel, ...]

    def draw(self, index) -> Drawn:
        found: dict[str, Found | MissingPanel] = {}
        for panel in self.panels:
            name = f"({panel.letter})"
            try:
                found[panel.letter] = find_runs(index, panel.setting, panel.opts, {"baseline": BASELINE.need,
                                                                                   "autolr": AUTOLR.need})
            except Missing as missing:
                found[panel.letter] = MissingPanel(name, missing.reason, missing.commands)
        missing = [value for value in found.values() if isinstance(value, MissingPanel)]
        collect_missing(missing, len(self.panels))

        figure = new_figure(4.4 * len(self.panels), 4.0)
        sources = []
        for position, panel in enumerate(self.panels):
            ax = figure.add_subplot(1, len(self.panels), position + 1)
            result = found[panel.letter]
            if isinstance(result, MissingPanel):
                draw_placeholder(ax, result, f"({panel.letter}) {panel.setting.label}: no runs")
                continue
            sources += [folder.relative(index.root) for folder in result.folders()]
            self._draw_panel(ax, panel, result)
        figure.suptitle(f"Figure {self.number}: {self.caption}", fontsize=11)
        handles = [Line2D([], [], color=SCHEDULE_COLOURS[key], label=f"{name}: metric (solid), LR (dashed)")
                   for key, name in (("baseline", "baseline"), ("autolr", "AutoLR"))]
        figure.legend(handles=handles, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 0.0), frameon=False)
        figure.tight_layout()
        return Drawn(figure, sources, missing)

    @staticmethod
    def _draw_panel(ax, panel: SummaryPanel, found: Found) -> None:
        column = pick_column(found.folders(), panel.column)
        values = []
        for key in ("baseline", "autolr"):
            curve = metric_curve(found.runs[key], column)
            draw_curve(ax, curve, SCHEDULE_COLOURS[key], None)
            values += list(curve.values())
        if use_log_scale(values):
            ax.set_yscale("log")
        ax.set_ylabel(COLUMN_LABELS.get(column, column))
        ax.set_xlabel("epoch")
        ax.set_gid(f"{panel.letter}:{column}")
        ax.grid(alpha=0.3)
        twin = ax.twinx()
        draw_lr(twin, {key: lr_curve(found.runs[key]) for key in ("baseline", "autolr")})
        twin.set_ylabel("learning rate (dashed)")
        twin.set_gid(f"{panel.letter}:lr")
        title = f"({panel.letter}) {describe_data(found.folders())}, {opt_label(found.opt)}"
        ax.set_title(textwrap.fill(title, 48), fontsize=9)
