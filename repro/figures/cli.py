"""`repro figures`: draw the AutoLR paper's figures from results CSVs into a folder of PNG and PDF files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def parse_numbers(text: str | None) -> set[int] | None:
    """Parse "1,5,18-20" into {1, 5, 18, 19, 20}; None for no selection."""
    if not text:
        return None
    numbers = set()
    for part in text.split(","):
        start, _, end = part.strip().partition("-")
        try:
            numbers.update(range(int(start), int(end or start) + 1))
        except ValueError:
            raise ConfigError(f"--only {text!r}: expected figure numbers such as 1,5,18-20") from None
    return numbers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repro figures",
        description="Draw every figure of the AutoLR paper whose runs exist under --results, and list the "
                    "skipped ones with the commands that would produce their data.")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder of run folders written by `repro run` and the studies (default: results/ "
                             "in the checkout)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the figures and their README.md index (default: plots/ in the checkout)")
    parser.add_argument("--only", default=None, help="figure numbers to draw, e.g. 1,5,18-20 (default: all)")
    parser.add_argument("--formats", default="png,pdf", help="comma-separated file formats (default: png,pdf)")
    parser.add_argument("--no-index", action="store_true", help="do not write README.md into --out")
    parser.add_argument("--list", action="store_true", help="print the registered figures and exit")
    return parser


def figures_command(root: Path, args: list[str]) -> int:
    """Run `repro figures`; return 0 when no figure failed, 1 otherwise (skipped figures are normal)."""
    options = build_parser().parse_args(args)
    # Imported here so that `repro --help` does not pay for matplotlib.
    from .build import build_figures, format_table
    from .registry import FIGURES

    if options.list:
        for entry in FIGURES:
            print(f"{entry.number:>3}  {entry.stem:<44} {entry.caption}")
        return 0
    formats = tuple(part.strip() for part in options.formats.split(",") if part.strip())
    if not formats:
        raise ConfigError("--formats is empty; pass e.g. png,pdf")
    results = options.results or root / "results"
    out_dir = options.out or root / "plots"
    reports = build_figures(results, out_dir, parse_numbers(options.only), formats, not options.no_index)
    print(format_table(reports))
    return 1 if any(report.status == "failed" for report in reports) else 0
