"""Drawing every registered figure whose data exist, and the table of what was written or skipped."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .base import FigureEntry
from .data import ResultsIndex
from .registry import FIGURES
from .settings import Missing
from .style import FORMATS, close_figure, save_figure

log = logging.getLogger(__name__)

INDEX_NAME = "README.md"


@dataclass
class FigureReport:
    """Outcome of one figure: written (some panels may be placeholders), skipped or failed."""

    number: int
    stem: str
    caption: str
    status: str  # written, skipped or failed
    title: str = ""  # first line of the drawn figure's title, naming the data it shows
    files: list[Path] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    reason: str = ""
    commands: list[str] = field(default_factory=list)
    missing_panels: list[str] = field(default_factory=list)


def draw_entry(entry: FigureEntry, index: ResultsIndex, out_dir: Path, formats=FORMATS) -> FigureReport:
    """Draw one figure into `out_dir`, or report why not. Old files of a skipped figure are removed."""
    report = FigureReport(entry.number, entry.stem, entry.caption, "written")
    try:
        drawn = entry.draw(index)
    except Missing as missing:
        report.status, report.reason, report.commands = "skipped", missing.reason, list(dict.fromkeys(missing.commands))
    except (DataError, ValueError, KeyError) as error:
        # A malformed or truncated CSV fails this figure only; the others are still drawn.
        log.warning("figure %d failed: %s: %s", entry.number, type(error).__name__, error)
        report.status, report.reason = "failed", f"{type(error).__name__}: {error}"
    else:
        report.title = drawn.figure.get_suptitle().split("\n")[0]
        try:
            report.files = save_figure(drawn.figure, out_dir, entry.stem, formats)
        finally:
            close_figure(drawn.figure)
        report.sources = drawn.sources
        for panel in drawn.missing:
            report.missing_panels.append(f"{panel.panel}: {panel.reason}")
            report.commands += [command for command in panel.commands if command not in report.commands]
        return report
    # Stale files would show a figure that the current results no longer support.
    for extension in formats:
        (out_dir / f"{entry.stem}.{extension}").unlink(missing_ok=True)
    return report


def build_figures(results: Path, out_dir: Path, numbers: set[int] | None = None, formats=FORMATS,
                  write_index: bool = True) -> list[FigureReport]:
    """Draw the registered figures (all, or those in `numbers`) from `results` into `out_dir`."""
    started = time.perf_counter()
    index = ResultsIndex(results)
    completed = sum(folder.status == "completed" for folder in index.folders)
    log.info("reading %s: %d run folders, %d completed", results, len(index.folders), completed)
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    for entry in FIGURES:
        if numbers and entry.number not in numbers:
            continue
        reports.append(draw_entry(entry, index, out_dir, formats))
    if write_index:
        (out_dir / INDEX_NAME).write_text(index_markdown(reports, results))
    log.info("figures done in %.1f s", time.perf_counter() - started)
    return reports


def format_table(reports: list[FigureReport]) -> str:
    """Plain-text table of written and skipped figures; each skipped one lists its commands."""
    lines = ["figure  status   output or reason", "------  -------  " + "-" * 60]
    for report in reports:
        if report.status == "written":
            names = ", ".join(path.name for path in report.files)
            lines.append(f"{report.number:>6}  written  {names}")
            for panel in report.missing_panels:
                lines.append(f"{'':17}placeholder panel {panel}")
        else:
            lines.append(f"{report.number:>6}  {report.status:<7}  {report.reason}")
        for command in report.commands:
            lines.append(f"{'':19}{command}")
    written = sum(report.status == "written" for report in reports)
    skipped = sum(report.status == "skipped" for report in reports)
    failed = sum(report.status == "failed" for report in reports)
    lines.append(f"{written} written, {skipped} skipped, {failed} failed")
    return "\n".join(lines)


def index_markdown(reports: list[FigureReport], results: Path) -> str:
    """Return the gallery page of the output folder: each written figure, its data, and the skipped ones."""
    lines = ["# Figures", "",
             f"Drawn by `repro figures` from the CSVs under `{results}`. Orange is the hand-tuned baseline,",
             "blue is AutoLR, and the learning rate is dashed. A title that says CPU scale names the",
             "stand-in data behind the figure.", ""]
    for report in reports:
        if report.status != "written":
            continue
        png = next((path.name for path in report.files if path.suffix == ".png"), None)
        heading = report.title or f"Figure {report.number}: {report.caption}"
        lines += [f"## {heading}", ""]
        if report.caption not in heading:
            lines += [report.caption, ""]
        if png:
            lines += [f"![Figure {report.number}]({png})", ""]
        lines += ["Drawn from:", ""] + [f"- `{source}`" for source in report.sources] + [""]
        for panel in report.missing_panels:
            lines.append(f"Placeholder panel {panel}")
        if report.missing_panels:
            lines.append("")
    others = [report for report in reports if report.status != "written"]
    if others:
        lines += ["## Not drawn", "", "| figure | status | reason | commands that produce its data |",
                  "|---|---|---|---|"]
        for report in others:
            commands = "<br>".join(f"`{command}`" for command in report.commands) or "-"
            reason = report.reason.replace("|", "\\|")
            lines.append(f"| {report.number} | {report.status} | {reason} | {commands} |")
        lines.append("")
    return "\n".join(lines)
