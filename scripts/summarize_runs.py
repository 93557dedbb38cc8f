"""Summarize completed runs of one setting as a markdown table: final metric per schedule and optimizer.

    python scripts/summarize_runs.py results/mnist_5k-resnet18_mnist [--metric test_acc]

Reads only epochs.csv and run.json files. Mean and sample standard deviation are over the plain
seed<N> folders whose status is completed; AutoLR's extra compute is its wall time (range test
and searches) as a percentage of the rest of the run's wall time.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

import pandas as pd


def collect(setting: Path, metric: str) -> dict[tuple[str, str], list[dict]]:
    runs = defaultdict(list)
    for record_path in sorted(setting.glob("*/seed*/run.json")):
        folder = record_path.parent
        if not re.fullmatch(r"seed\d+", folder.name) or not (folder / "epochs.csv").is_file():
            continue  # reruns (seed0-2), variants and study folders
        record = json.loads(record_path.read_text())
        if record.get("status") != "completed":
            continue
        schedule, opt = folder.parent.name.split("-", 1)
        epochs = pd.read_csv(folder / "epochs.csv")
        last = epochs.iloc[-1]
        extra = last["autolr_time_s"] / (last["time_s"] - last["autolr_time_s"])
        steps = last["autolr_extra_steps"] / last["step"]
        runs[(opt, schedule)].append({"metric": float(last[metric]), "extra": 100 * extra,
                                      "extra_steps": 100 * steps, "seed": folder.name})
    return runs


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {deviation:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setting", type=Path, help="results/<dataset>-<model> folder")
    parser.add_argument("--metric", default="test_acc", help="epochs.csv column of the final row (default test_acc)")
    args = parser.parse_args()

    runs = collect(args.setting, args.metric)
    print(f"| optimizer | schedule | seeds | final {args.metric} (mean ± std) | AutoLR extra time % | "
          "AutoLR extra train steps % |")
    print("|---|---|---|---|---|---|")
    for (opt, schedule), rows in sorted(runs.items()):
        extra = spread([row["extra"] for row in rows]) if schedule == "autolr" else "-"
        steps = spread([row["extra_steps"] for row in rows]) if schedule == "autolr" else "-"
        print(f"| {opt} | {schedule} | {len(rows)} | {spread([row['metric'] for row in rows])} | {extra} | {steps} |")


if __name__ == "__main__":
    main()
