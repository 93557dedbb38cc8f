"""Run folders (results/<dataset>-<model>/<schedule>-<opt>/seed<N>[-<suffix>]/) and run.json."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..errors import ConfigError

STATUSES = ("running", "completed", "diverged", "interrupted", "failed")


def run_folder_name(cfg) -> Path:
    """Relative path of a run's folder, without any collision suffix."""
    leaf = f"seed{cfg.seed}" + (f"-{cfg.suffix}" if cfg.suffix else "")
    return Path(f"{cfg.dataset.name}-{cfg.model.name}") / f"{cfg.schedule.name}-{cfg.opt.name}" / leaf


def study_folder_name(cfg, study: str) -> Path:
    """Relative path of a study's folder: the run's layout with `<study>-<opt>` as the middle level.

    `study` is range_test, fit_study or noise_study, so studies sit beside the runs of the same
    dataset and model: results/<dataset>-<model>/<study>-<opt>/seed<N>[-<suffix>]/.
    """
    leaf = f"seed{cfg.seed}" + (f"-{cfg.suffix}" if cfg.suffix else "")
    return Path(f"{cfg.dataset.name}-{cfg.model.name}") / f"{study}-{cfg.opt.name}" / leaf


def new_run_folder(cfg) -> Path:
    """Create a fresh run folder. An existing one is never reused: `-2`, `-3`, ... is appended."""
    return new_unique_folder(Path(cfg.paths.results_dir) / run_folder_name(cfg))


def new_unique_folder(base: Path) -> Path:
    """Create `base`, or `base-2`, `base-3`, ... when it exists; an existing folder is never reused."""
    folder, number = base, 1
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=False)
            return folder
        except FileExistsError:
            number += 1
            folder = base.with_name(f"{base.name}-{number}")


def resume_folder(path: str) -> Path:
    folder = Path(path).expanduser().resolve()
    if not (folder / "run.json").is_file():
        raise ConfigError(f"resume={path}: no run.json in {folder}; pass the folder of an earlier run, "
                          "e.g. resume=results/digits-small_cnn/autolr-sgd/seed0")
    return folder


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


class RunRecord:
    """run.json: command, versions, device, times, status, and a summary filled in at the end."""

    def __init__(self, folder: Path):
        self.path = folder / "run.json"
        self.data: dict = json.loads(self.path.read_text()) if self.path.exists() else {}

    def start(self, overrides: list[str], device: torch.device, resumed: bool, command: str = "run") -> None:
        """Record a start; `command` is the repro subcommand (run, range-test, fit-study, noise-study)."""
        import hydra
        import torchvision

        from .. import __version__

        session = {"started": _utc_now(), "command": " ".join(["repro", command, *overrides]),
                   "device": describe_device(device)}
        if not self.data:
            self.data = {
                "command": session["command"], "overrides": list(overrides), "start_time": session["started"],
                "end_time": None, "status": "running", "message": "",
                "versions": {"repro": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
                             "torchvision": torchvision.__version__, "hydra": hydra.__version__},
                "host": platform.node(), "device": session["device"], "sessions": [],
            }
        self.data["sessions"].append(session)
        self.data["status"] = "running"
        if resumed:
            self.data["message"] = "resumed"
        self.save()

    def finish(self, status: str, message: str = "", **summary) -> None:
        assert status in STATUSES, status
        self.data.update(status=status, message=message, end_time=_utc_now())
        self.data.setdefault("summary", {}).update(summary)
        self.data["sessions"][-1]["ended"] = self.data["end_time"]
        self.data["sessions"][-1]["status"] = status
        self.save()

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.save()

    def save(self) -> None:
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(partial, self.path)


