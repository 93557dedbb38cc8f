"""A study's folder, resolved config, run.json and cost, shared by the three study commands."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ..errors import DivergedError
from ..results.run_dir import RunRecord, new_unique_folder, study_folder_name

log = logging.getLogger(__name__)

# The override the study commands add so the `study` group is composed (see conf/study/).
STUDY_GROUP_OVERRIDE = "+study=default"


@dataclass
class Cost:
    """Work a study did. A forward+backward+step counts as one step, a forward-only batch as one forward pass."""

    batch_size: int
    training_steps: int = 0         # optimizer steps of the training run up to the study's points
    study_steps: int = 0            # optimizer steps the study itself took (sweep or trial steps)
    forward_batches: int = 0        # forward-only mini-batches (loss estimates)
    autolr_steps: int = 0           # range-test and search steps of an AutoLR schedule while training
    autolr_forward_batches: int = 0
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter, repr=False)

    def as_dict(self) -> dict:
        self.seconds = time.perf_counter() - self.started
        return {"batch_size": self.batch_size, "training_steps": self.training_steps,
                "study_steps": self.study_steps, "forward_batches": self.forward_batches,
                "autolr_steps": self.autolr_steps, "autolr_forward_batches": self.autolr_forward_batches,
                "seconds": round(self.seconds, 2)}

    def describe(self) -> str:
        text = (f"cost: {self.training_steps} training steps to reach the study's state, {self.study_steps} "
                f"study steps, {self.forward_batches} forward-only mini-batches (batch size {self.batch_size})")
        if self.autolr_steps or self.autolr_forward_batches:
            text += f", plus {self.autolr_steps} steps and {self.autolr_forward_batches} forward batches of AutoLR"
        return text + f"; {self.seconds:.1f} s"


def study_overrides(overrides: list[str]) -> list[str]:
    """The user's overrides, without the group override the command added."""
    return [override for override in overrides if override.lstrip("+") != STUDY_GROUP_OVERRIDE.lstrip("+")]


def run_study(cfg: DictConfig, overrides: list[str], study: str, command: str, device: torch.device,
              body: Callable[[Path, RunRecord], None]) -> Path:
    """Create the study folder, save config.yaml and run.json, call `body(folder, record)`, close run.json.

    `body` writes its CSV and calls record.update(...) with its result and cost. A failure marks
    run.json as failed, diverged or interrupted and re-raises.
    """
    folder = new_unique_folder(Path(cfg.paths.results_dir) / study_folder_name(cfg, study))
    handler = logging.FileHandler(folder / "study.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("repro").addHandler(handler)
    try:
        (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        record = RunRecord(folder)
        record.start(study_overrides(overrides), device, resumed=False, command=command)
        log.info("%s folder: %s", command, folder)
        try:
            body(folder, record)
        except DivergedError as error:
            record.finish("diverged", str(error))
            raise
        except KeyboardInterrupt:
            record.finish("interrupted", "interrupted; run the study again")
            raise
        except Exception as error:
            record.finish("failed", f"{type(error).__name__}: {error}")
            raise
        record.finish("completed")
    finally:
        logging.getLogger("repro").removeHandler(handler)
        handler.close()
    return folder
