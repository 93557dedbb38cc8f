"""Read the runs `repro compare` covers and turn them into its CSV rows, markdown table and figure."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import is_better

# comparison.csv, one row per method. final/best: the metric at the last evaluation and the best
# one, mean and sample standard deviation over the completed seeds. target: the baseline's mean
# final metric; steps/time_to_target: the first evaluation at or past it (mean over the seeds
# that reached it). train_steps: training steps; extra_steps / extra_forward: AutoLR's searches
# and any range test (forward+backward steps, forward-only batches); total_steps = both step counts;
# time_s: wall time of the whole run, extra work included.
COMPARISON_COLUMNS = (
    "method", "schedule", "opt", "seeds", "completed", "diverged", "missing", "metric",
    "final_mean", "final_std", "best_mean", "best_std", "target", "reached_target",
    "steps_to_target_mean", "time_to_target_s_mean", "train_steps_mean", "extra_steps_mean",
    "extra_forward_mean", "total_steps_mean", "time_s_mean", "extra_time_s_mean",
)
# comparison_seeds.csv, one row per run. Its folder is relative to the setting folder
# (<method>/seed<N>[-<suffix>]), so the file does not contain a path of the machine that wrote it.
SEED_COLUMNS = ("method", "seed", "status", "folder", "final", "best", "steps_to_target", "time_to_target_s",
                "train_steps", "extra_steps", "extra_forward", "time_s", "extra_time_s")


@dataclass
class Run:
    """One run folder as compare reads it; `epochs`/`steps` are None when the files are absent."""

    seed: int
    folder: Path
    status: str  # completed, diverged, running, interrupted, failed or missing
    epochs: pd.DataFrame | None = None
    steps: pd.DataFrame | None = None


@dataclass
class MethodRuns:
    method: str
    runs: list[Run] = field(default_factory=list)

    def add(self, run: Run) -> None:
        self.runs.append(run)

    def by_status(self, status: str) -> list[Run]:
        return [run for run in self.runs if run.status == status]


def load_run(folder: Path, seed: int) -> Run:
    record = folder / "run.json"
    if not record.is_file():
        return Run(seed, folder, "missing")
    status = json.loads(record.read_text()).get("status", "failed")
    epochs = pd.read_csv(folder / "epochs.csv") if (folder / "epochs.csv").is_file() else None
    steps = pd.read_csv(folder / "steps.csv") if (folder / "steps.csv").is_file() else None
    return Run(seed, folder, status, epochs, steps)


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [value for value in values if value is not None and math.isfinite(value)]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _mean(values: list[float]) -> float:
    return _mean_std(values)[0]


def _seed_row(method: str, run: Run, metric: str, direction: str, target: float) -> dict:
    folder = f"{run.folder.parent.name}/{run.folder.name}"
    row = {"method": method, "seed": run.seed, "status": run.status, "folder": folder}
    epochs = run.epochs
    if epochs is None or epochs.empty or metric not in epochs.columns:
        return row
    values = epochs[metric].astype(float)
    last = epochs.iloc[-1]
    row["final"] = float(values.iloc[-1]) if run.status == "completed" else float("nan")
    row["best"] = float(values.min() if direction == "min" else values.max())
    if math.isfinite(target):
        reached = epochs[[is_better(value, target, direction) for value in values]]
        if not reached.empty:
            row["steps_to_target"] = int(reached.iloc[0]["step"])
            row["time_to_target_s"] = float(reached.iloc[0]["time_s"])
    row["train_steps"] = int(last["step"])
    row["extra_steps"] = int(last["autolr_extra_steps"])
    row["extra_forward"] = int(last["autolr_extra_forward"])
    row["time_s"] = float(last["time_s"])
    row["extra_time_s"] = float(last["autolr_time_s"])
    return row


def summarize(runs: dict[str, MethodRuns], baseline: str, metric: str, direction: str
              ) -> tuple[list[dict], list[dict], float]:
    """Return (comparison rows, per-seed rows, target): the target is the baseline's mean final metric."""
    baseline_rows = [_seed_row(baseline, run, metric, direction, float("nan")) for run in runs[baseline].runs]
    target = _mean([row.get("final") for row in baseline_rows if row["status"] == "completed"])

    rows, seed_rows = [], []
    for method, method_runs in runs.items():
        per_seed = [_seed_row(method, run, metric, direction, target) for run in method_runs.runs]
        seed_rows += per_seed
        done = [row for row in per_seed if row["status"] == "completed"]
        reached = [row for row in done if "steps_to_target" in row]
        schedule, opt = method.split("-", 1)
        final_mean, final_std = _mean_std([row.get("final") for row in done])
        best_mean, best_std = _mean_std([row.get("best") for row in done])
        train = _mean([row.get("train_steps") for row in done])
        extra = _mean([row.get("extra_steps") for row in done])
        rows.append({
            "method": method, "schedule": schedule, "opt": opt, "seeds": len(per_seed), "completed": len(done),
            "diverged": len(method_runs.by_status("diverged")),
            "missing": len([run for run in method_runs.runs if run.status not in ("completed", "diverged")]),
            "metric": metric, "final_mean": final_mean, "final_std": final_std, "best_mean": best_mean,
            "best_std": best_std, "target": target, "reached_target": len(reached),
            "steps_to_target_mean": _mean([row["steps_to_target"] for row in reached]),
            "time_to_target_s_mean": _mean([row["time_to_target_s"] for row in reached]),
            "train_steps_mean": train, "extra_steps_mean": extra,
            "extra_forward_mean": _mean([row.get("extra_forward") for row in done]),
            "total_steps_mean": train + extra, "time_s_mean": _mean([row.get("time_s") for row in done]),
            "extra_time_s_mean": _mean([row.get("extra_time_s") for row in done]),
        })
    seed_rows = [{column: row.get(column, "") for column in SEED_COLUMNS} for row in seed_rows]
    return rows, seed_rows, target


def _number(value: float, digits: int = 4) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _spread(mean: float, std: float) -> str:
    return "-" if not math.isfinite(mean) else f"{mean:.4g} ± {std:.2g}"


def write_markdown(path: Path, cfg, options, rows: list[dict], metric: str, direction: str, target: float,
                   peer_rows: list[dict]) -> None:
    """Write comparison.md: the setting, the method table and the range-test peer check."""
    better = "lower" if direction == "min" else "higher"
    seeds = ",".join(map(str, options.seeds))
    lines = [
        f"# {cfg.dataset.label}, {cfg.model.name}: AutoLR and its peers",
        "",
        f"Metric: `{metric}` ({better} is better), seeds {seeds}. Target: the mean final `{metric}` of "
        f"`{options.baseline}` = {_number(target)}. Steps and time to target count the first evaluation "
        "that reaches it, averaged over the seeds that did. Total steps add AutoLR's search and range-test "
        "steps (and onecycle's range test) to the training steps; wall time includes them.",
        "",
        f"| method | seeds done | diverged | final {metric} | best {metric} | reached target | steps to target "
        "| time to target (s) | total steps | extra steps | wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['completed']}/{row['seeds']} | {row['diverged']} | "
            f"{_spread(row['final_mean'], row['final_std'])} | {_spread(row['best_mean'], row['best_std'])} | "
            f"{row['reached_target']}/{row['completed']} | {_number(row['steps_to_target_mean'])} | "
            f"{_number(row['time_to_target_s_mean'])} | {_number(row['total_steps_mean'])} | "
            f"{_number(row['extra_steps_mean'])} | {_number(row['time_s_mean'])} |")
    if peer_rows:
        lines += ["", "## Range-test peer check", "",
                  f"Same sweep on a fresh model (seed {options.seeds[0]}, opt {options.opt}).", "",
                  "| tool | suggested max LR | points | stopped | rule |", "|---|---|---|---|---|"]
        for row in peer_rows:
            lines.append(f"| {row['tool']} | {_number(row['suggested_max_lr'])} | {row['points']} | "
                         f"{row['stop_reason']} | {row['rule']} |")
    path.write_text("\n".join(lines) + "\n")


def _mean_curve(frames: list[pd.DataFrame], x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    frames = [frame[[x, y]].dropna() for frame in frames if frame is not None and y in frame.columns]
    if not frames:
        return np.array([]), np.array([])
    joined = pd.concat(frames).groupby(x)[y].mean()
    return joined.index.to_numpy(dtype=float), joined.to_numpy(dtype=float)


def write_figure(out: Path, runs: dict[str, MethodRuns], metric: str, baseline: str) -> list[Path]:
    """Overlay every method's metric (top) and LR (bottom, log scale) against epochs, averaged over seeds."""
    from ..figures.style import new_figure, save_figure

    figure = new_figure(8, 7)
    metric_ax, lr_ax = figure.subplots(2, 1, sharex=True)
    colours = iter(["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray", "tab:olive",
                    "tab:cyan", "black", "gold", "navy", "lime", "teal", "maroon"])
    for method, method_runs in runs.items():
        schedule, _ = method.split("-", 1)
        if schedule == "autolr":
            colour = "tab:blue"
        elif method == baseline:
            colour = "tab:orange"
        else:
            colour = next(colours, None)
        style = "-" if schedule in ("autolr", "baseline") or method == baseline else "--"
        usable = [run for run in method_runs.runs if run.status in ("completed", "diverged")]
        x, y = _mean_curve([run.epochs for run in usable], "epoch", metric)
        if x.size:
            metric_ax.plot(x, y, style, color=colour, label=method)
        # steps.csv has a row every trainer.log_every steps; a run shorter than that has only epochs.csv.
        lr_frames = [run.steps if run.steps is not None and len(run.steps) else run.epochs for run in usable]
        x, y = _mean_curve(lr_frames, "epoch", "lr")
        if x.size:
            lr_ax.plot(x, y, style, color=colour, label=method)
    metric_ax.set_ylabel(metric)
    metric_ax.legend(fontsize=7, ncol=2)
    lr_ax.set_ylabel("learning rate (effective for LR-free optimizers)")
    lr_ax.set_yscale("log")
    lr_ax.set_xlabel("epoch")
    return save_figure(figure, out, "comparison")
