"""Study figures: loss-estimate noise vs superbatch size (7) and the LR range test (8)."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import numpy as np

from ..results.schema import NOISE_STUDY_COLUMNS, RANGE_TEST_COLUMNS
from .base import Drawn, FigureEntry, MissingPanel, collect_missing, draw_placeholder
from .data import ResultsIndex, RunFolder, read_csv
from .settings import Found, Missing, Need, Setting, describe_data, find_any, opt_label
from .style import new_figure

STUDY_OPTS = ("sgd", "momentum", "adam", "adamw")


@dataclass(frozen=True)
class NoisePanel:
    letter: str
    setting: Setting
    opts: tuple[str, ...] = STUDY_OPTS


@dataclass
class NoiseFigure(FigureEntry):
    """Standard deviation of the superbatch loss vs superbatch size, one panel per setting."""

    number: int
    stem: str
    caption: str
    panels: tuple[NoisePanel, ...]

    def draw(self, index: ResultsIndex) -> Drawn:
        found: dict[str, Found | MissingPanel] = {}
        for panel in self.panels:
            try:
                found[panel.letter] = find_any(index, panel.setting, panel.opts, (Need("noise_study"),))
            except Missing as missing:
                found[panel.letter] = MissingPanel(f"({panel.letter})", missing.reason, missing.commands)
        missing = [value for value in found.values() if isinstance(value, MissingPanel)]
        collect_missing(missing, len(self.panels))

        figure = new_figure(4.6 * len(self.panels), 4.0)
        sources = []
        for position, panel in enumerate(self.panels):
            ax = figure.add_subplot(1, len(self.panels), position + 1)
            result = found[panel.letter]
            if isinstance(result, MissingPanel):
                draw_placeholder(ax, result, f"({panel.letter}) {panel.setting.label}: no noise study")
                continue
            folder = result.first()
            sources.append(f"{folder.relative(index.root)}/noise_study.csv")
            self._draw_panel(ax, panel, folder)
        figure.suptitle(f"Figure {self.number}: {self.caption}", fontsize=11)
        figure.tight_layout()
        return Drawn(figure, sources, missing)

    @staticmethod
    def _draw_panel(ax, panel: NoisePanel, folder: RunFolder) -> None:
        frame = read_csv(folder.path / "noise_study.csv", NOISE_STUDY_COLUMNS).sort_values("superbatch")
        sizes = frame["superbatch"].to_numpy(dtype=float)
        std = frame["std_loss"].to_numpy(dtype=float)
        ax.plot(sizes, std, marker="o", color="tab:blue", label="measured standard deviation")
        if sizes.size and sizes[0] > 0 and np.isfinite(std[0]):
            # Independent mini-batches would shrink the standard deviation as 1/sqrt(size).
            reference = std[0] * np.sqrt(sizes[0] / sizes)
            ax.plot(sizes, reference, linestyle=":", color="0.4", label="1/sqrt(size) from the first point")
        if sizes.size and sizes.max() >= 4 * max(sizes.min(), 1e-12):
            ax.set_xscale("log", base=2)
        draws = sorted({int(value) for value in frame["draws"] if not math.isnan(float(value))})
        ax.set_xlabel("superbatch size (mini-batches)")
        ax.set_ylabel("std of the loss estimate")
        title = f"({panel.letter}) {describe_data([folder])}, {opt_label(folder.opt)}"
        if draws:
            title += f", {'/'.join(map(str, draws))} draws per size"
        ax.set_title(textwrap.fill(title, 50), fontsize=9)
        ax.set_gid(f"{panel.letter}:noise")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)


@dataclass
class RangeTestFigure(FigureEntry):
    """The LR range test of the first setting that has one, with the max LR it chose."""

    number: int
    stem: str
    caption: str
    settings: tuple[Setting, ...]
    opts: tuple[str, ...] = STUDY_OPTS

    def draw(self, index: ResultsIndex) -> Drawn:
        reasons, commands = [], []
        for setting in self.settings:
            try:
                found = find_any(index, setting, self.opts, (Need("range_test"), Need("autolr")))
            except Missing as missing:
                reasons.append(missing.reason)
                commands += missing.commands
                continue
            for folder in found.folders():
                chosen = (folder.record.get("range_test") or {}).get("suggested_max_lr")
                if (folder.path / "range_test.csv").is_file() and chosen is not None:
                    return self._draw(index, folder, float(chosen))
            reasons.append(f"{setting.label}: no range_test.csv with range_test.suggested_max_lr in run.json")
        raise Missing("; ".join(reasons), commands)

    def _draw(self, index: ResultsIndex, folder: RunFolder, chosen: float) -> Drawn:
        frame = read_csv(folder.path / "range_test.csv", RANGE_TEST_COLUMNS)
        lr = frame["lr"].to_numpy(dtype=float)
        loss = frame["loss"].to_numpy(dtype=float)
        smoothed = frame["smoothed_loss"].to_numpy(dtype=float)

        figure = new_figure(6.0, 4.2)
        ax = figure.add_subplot(1, 1, 1)
        ax.plot(lr, loss, color="tab:blue", alpha=0.35, linewidth=1, label="loss per step")
        ax.plot(lr, smoothed, color="tab:blue", linewidth=1.8, label="smoothed loss")
        finite = np.isfinite(smoothed)
        if finite.any():
            lowest = int(np.nanargmin(np.where(finite, smoothed, np.inf)))
            ax.plot([lr[lowest]], [smoothed[lowest]], marker="o", color="tab:red", linestyle="none",
                    label=f"loss minimum (LR {lr[lowest]:.3g})")
            # Diverging losses at the end of the sweep would flatten everything else.
            before = smoothed[: lowest + 1][np.isfinite(smoothed[: lowest + 1])]
            top = max(float(before.max()), float(smoothed[lowest])) if before.size else float(np.nanmax(smoothed))
            bottom = float(np.nanmin(np.where(np.isfinite(loss), loss, np.inf)))
            ax.set_ylim(bottom - 0.05 * (top - bottom), top + 0.35 * (top - bottom))
        ax.axvline(chosen, color="tab:green", linestyle="--", label=f"chosen max LR {chosen:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (one per training step)")
        ax.set_ylabel("training loss")
        rule = (folder.record.get("range_test") or {}).get("rule")
        title = f"{describe_data([folder])}, {opt_label(folder.opt)}"
        if rule:
            title = textwrap.fill(title, 70) + "\n" + textwrap.fill(f"rule: {rule}", 70)
        ax.set_title(title, fontsize=9)
        ax.set_gid("range_test")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figure.suptitle(f"Figure {self.number}: {self.caption}", fontsize=11)
        figure.tight_layout()
        return Drawn(figure, [f"{folder.relative(index.root)}/range_test.csv"])
