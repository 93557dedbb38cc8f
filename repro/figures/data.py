"""Index of the run folders under results/, CSV loading, and curves averaged over seeds.

A run folder is results/<dataset>-<model>/<schedule>-<opt>/seed<N>[-<suffix>]/ with run.json,
config.yaml and CSVs. Study folders use the study name (range_test, fit_study, noise_study) in
place of the schedule. A second run of the same setting and seed gets a numeric suffix (seed0-2),
which this index treats as a repeat of seed0 and not as a variant.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import DataError
from ..results.schema import EPOCH_HEAD, STEP_COLUMNS


@dataclass(frozen=True)
class RunFolder:
    """One run or study folder, as named on disk and described by its run.json and config.yaml."""

    path: Path
    dataset: str
    model: str
    group: str  # schedule name (baseline, autolr, constant) or study name (range_test, ...)
    opt: str
    seed: int
    suffix: str | None  # variant tag such as drop50; None for a plain seed
    repeat: int  # 1 for seed<N>, 2 for the collision folder seed<N>-2, ...
    status: str
    record: dict = field(repr=False)
    config: dict = field(repr=False)

    def relative(self, root: Path) -> str:
        try:
            return str(self.path.relative_to(root))
        except ValueError:
            return str(self.path)

    def config_value(self, dotted: str, default=None):
        node = self.config
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def parse_leaf(name: str) -> tuple[int, str | None, int] | None:
    """Split a run folder's leaf name into (seed, suffix, repeat); None when it is not seed<N>..."""
    parts = name.split("-")
    if not parts[0].startswith("seed") or not parts[0][4:].isdigit():
        return None
    seed, rest, repeat = int(parts[0][4:]), parts[1:], 1
    if rest and rest[-1].isdigit():  # collision suffix appended by the runner
        repeat = int(rest.pop())
    return seed, "-".join(rest) or None, repeat


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    with open(path) as handle:
        loaded = yaml.safe_load(handle)
    return loaded if isinstance(loaded, dict) else {}


class ResultsIndex:
    """Every run folder under a results directory, queried by setting, schedule and optimizer."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"results folder {self.root} not found; pass --results with the folder that "
                            "`repro run` writes into (results/ by default)")
        self.folders: list[RunFolder] = []
        for record_path in sorted(self.root.glob("*/*/seed*/run.json")):
            folder = self._read_folder(record_path.parent)
            if folder is not None:
                self.folders.append(folder)

    def _read_folder(self, path: Path) -> RunFolder | None:
        dataset, sep1, model = path.parent.parent.name.partition("-")
        group, sep2, opt = path.parent.name.rpartition("-")
        leaf = parse_leaf(path.name)
        if not (sep1 and sep2 and leaf):
            return None
        try:
            record = json.loads((path / "run.json").read_text())
        except json.JSONDecodeError:
            # A run.json caught mid-write by a copy is treated like a run that has not finished.
            record = {"status": "unreadable"}
        seed, suffix, repeat = leaf
        return RunFolder(path, dataset, model, group, opt, seed, suffix, repeat, str(record.get("status", "")),
                         record, _read_yaml(path / "config.yaml"))

    def models(self, dataset: str) -> list[str]:
        return sorted({folder.model for folder in self.folders if folder.dataset == dataset})

    def find(self, dataset: str, group: str, opt: str, model: str | None = None, suffix: str | None = None,
             suffix_prefix: str | None = None) -> list[RunFolder]:
        """Completed folders of one setting, one per seed (the latest repeat), sorted by seed.

        `suffix_prefix` matches variants such as drop50 by their prefix ("drop") in place of an
        exact `suffix`.
        """
        chosen: dict[tuple, RunFolder] = {}
        for folder in self.folders:
            if (folder.dataset, folder.group, folder.opt) != (dataset, group, opt) or folder.status != "completed":
                continue
            if model is not None and folder.model != model:
                continue
            if suffix_prefix is not None:
                if not (folder.suffix or "").startswith(suffix_prefix):
                    continue
            elif folder.suffix != suffix:
                continue
            key = (folder.model, folder.suffix, folder.seed)
            if key not in chosen or folder.repeat > chosen[key].repeat:
                chosen[key] = folder
        found = sorted(chosen.values(), key=lambda folder: (folder.model, folder.suffix or "", folder.seed))
        if found:  # one model and one variant per figure: the first in name order
            first = found[0]
            found = [folder for folder in found if (folder.model, folder.suffix) == (first.model, first.suffix)]
        return found

    def unfinished(self, dataset: str, group: str, opt: str) -> list[RunFolder]:
        return [folder for folder in self.folders
                if (folder.dataset, folder.group, folder.opt) == (dataset, group, opt) and folder.status != "completed"]


# ----------------------------------------------------------------------------------------------
# CSV loading


def read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read one results CSV and check that it has the `required` columns."""
    if not path.is_file():
        raise DataError(f"{path} not found")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path} is empty") from error
    except pd.errors.ParserError as error:
        raise DataError(f"{path} could not be parsed as CSV: {error}") from error
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DataError(f"{path} has no column {', '.join(missing)} (columns: {', '.join(frame.columns)})")
    return frame


def epochs_frame(folder: RunFolder) -> pd.DataFrame:
    return read_csv(folder.path / "epochs.csv", EPOCH_HEAD)


def steps_frame(folder: RunFolder) -> pd.DataFrame:
    return read_csv(folder.path / "steps.csv", STEP_COLUMNS)


def epoch_columns(folder: RunFolder) -> list[str]:
    path = folder.path / "epochs.csv"
    if not path.is_file():
        raise DataError(f"{path} not found")
    with open(path) as handle:
        return handle.readline().strip().split(",")


@dataclass
class Curve:
    """Mean and spread of one column over seeds, on the x values every seed has."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray  # mean - std (equal to mean for one seed)
    high: np.ndarray
    seeds: int

    def values(self) -> np.ndarray:
        return np.concatenate([self.low, self.high])


def mean_curve(frames: list[pd.DataFrame], x: str, y: str) -> Curve:
    """Average column `y` over the seeds' frames, matching rows by `x` (epoch or step)."""
    parts = []
    for seed_index, frame in enumerate(frames):
        part = frame[[x, y]].copy()
        part[y] = pd.to_numeric(part[y], errors="coerce")
        part = part.dropna().drop_duplicates(subset=x, keep="last")
        part["seed_index"] = seed_index
        parts.append(part)
    joined = pd.concat(parts, ignore_index=True)
    grouped = joined.groupby(x)[y]
    stats = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0), "count": grouped.count()})
    stats = stats[stats["count"] == len(frames)].sort_index()  # only x values that every seed reached
    spread = stats["std"].fillna(0.0).to_numpy()
    mean = stats["mean"].to_numpy(dtype=float)
    return Curve(stats.index.to_numpy(dtype=float), mean, mean - spread, mean + spread, len(frames))


def finite(values) -> list[float]:
    return [float(value) for value in values if value is not None and math.isfinite(float(value))]
