"""Figure entries and the result of drawing one."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from .data import ResultsIndex
from .settings import Missing
from .style import mark_missing


@dataclass
class MissingPanel:
    """A panel drawn as a placeholder because its runs do not exist."""

    panel: str  # e.g. "(a) ImageNet / ResNet-50"
    reason: str
    commands: list[str]


@dataclass
class Drawn:
    """A drawn figure, the folders it read and the panels it had to leave empty."""

    figure: Figure
    sources: list[str]  # run folders, relative to the results folder
    missing: list[MissingPanel] = field(default_factory=list)


class FigureEntry:
    """One figure of the AutoLR paper. Subclasses set the fields below and implement `draw`."""

    number: int
    stem: str  # output file name without extension, e.g. fig18_fashion_mnist_sgd
    caption: str  # one-line description of the figure's content

    def draw(self, index: ResultsIndex) -> Drawn:
        """Draw the figure from `index`; raise Missing when none of its data exist."""
        raise NotImplementedError


def collect_missing(panels: list[MissingPanel], total: int) -> None:
    """Raise Missing for the whole figure when every one of its `total` panels lacks data."""
    if panels and len(panels) == total:
        reason = "; ".join(f"{panel.panel} {panel.reason}".strip() for panel in panels)
        commands = [command for panel in panels for command in panel.commands]
        raise Missing(reason, commands)


def draw_placeholder(ax, panel: MissingPanel, title: str = "") -> None:
    """Mark `ax` as a panel without data: its reason and the first commands that would produce it."""
    lines = [textwrap.fill(f"{panel.panel} {panel.reason}", 46), "", "produce it with:"]
    lines += [textwrap.fill(command, 46, subsequent_indent="    ") for command in panel.commands[:2]]
    mark_missing(ax, "\n".join(lines))
    if title:
        ax.set_title(textwrap.fill(title, 48), fontsize=9)
