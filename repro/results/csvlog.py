"""Append-only CSV files with a fixed header, flushed on every row so a crash loses nothing."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path


class CsvLog:
    """One CSV file with `columns`; the header is written once, when the file is created."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = Path(path)
        self.columns = tuple(columns)
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as handle:
                header = next(csv.reader(handle), None)
            if tuple(header or ()) != self.columns:
                raise ValueError(f"{self.path} has columns {header}, expected {list(self.columns)}")
            new = False
        else:
            new = True
        self._handle = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=self.columns)
        if new:
            self._writer.writeheader()
            self._handle.flush()

    def write(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"{self.path.name}: unknown columns {sorted(unknown)}")
        self._writer.writerow({key: _format(value) for key, value in row.items()})
        self._handle.flush()

    def keep_rows(self, keep: Callable[[dict], bool]) -> int:
        """Rewrite the file with only the rows for which `keep(row)` is true; returns how many."""
        self._handle.close()
        with open(self.path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if keep(row)]
        partial = self.path.with_suffix(".csv.partial")
        with open(partial, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        partial.replace(self.path)
        self._handle = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=self.columns)
        return len(rows)

    def close(self) -> None:
        self._handle.close()


def _format(value):
    # Full float precision so a resumed run can be compared row for row; NaN stays readable.
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value
