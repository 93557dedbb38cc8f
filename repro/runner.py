"""`repro run`: the one place that wires a config into task, optimizer, schedule and loop."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from .autolr import AutoLR, AutoLRConfig, RangeTestResult, SearchResult
from .components import build_components, prepare
from .errors import ConfigError, DivergedError
from .results.csvlog import CsvLog
from .results.run_dir import RunRecord, new_run_folder, resume_folder
from .results.schema import AUTOLR_COLUMNS, RANGE_TEST_COLUMNS, STEP_COLUMNS, epoch_columns
from .schedules import build_schedule
from .train.checkpoint import load_checkpoint, set_rng_states
from .train.loop import LoopState, Trainer

log = logging.getLogger(__name__)

# Keys that may differ between a run and its resume: where files live, and the resume flag.
RESUME_IGNORED_KEYS = ("resume", "paths")


def _attach_file_log(folder: Path) -> logging.Handler:
    handler = logging.FileHandler(folder / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("repro").addHandler(handler)
    return handler


def _flatten(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _check_resume_config(cfg: DictConfig, folder: Path) -> None:
    saved = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"), resolve=True)
    current = OmegaConf.to_container(cfg, resolve=True)
    for key in RESUME_IGNORED_KEYS:
        saved.pop(key, None)
        current.pop(key, None)
    saved, current = _flatten(saved), _flatten(current)
    differences = [key for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if differences:
        listed = ", ".join(f"{key} (run: {saved.get(key)!r}, now: {current.get(key)!r})" for key in differences[:3])
        raise ConfigError(f"resume={folder}: overrides differ from the run's config.yaml: {listed}; "
                          "pass the same overrides as the first run")


class RunLogs:
    """The CSV files of one run."""

    def __init__(self, folder: Path, metric_columns, autolr: bool):
        self.epochs = CsvLog(folder / "epochs.csv", epoch_columns(metric_columns))
        self.steps = CsvLog(folder / "steps.csv", STEP_COLUMNS)
        self.autolr = CsvLog(folder / "autolr.csv", AUTOLR_COLUMNS) if autolr else None
        self.range_test = CsvLog(folder / "range_test.csv", RANGE_TEST_COLUMNS) if autolr else None

    def rewind(self, epoch: int, step: int, search_count: int, range_test_done: bool) -> None:
        """Drop rows written after the checkpoint at (epoch, step) so a resume appends no duplicates."""
        self.epochs.keep_rows(lambda row: float(row["epoch"]) <= epoch)
        self.steps.keep_rows(lambda row: int(row["step"]) < step)
        if self.autolr:
            self.autolr.keep_rows(lambda row: int(row["search_id"]) < search_count)
            self.range_test.keep_rows(lambda row: range_test_done)

    def close(self) -> None:
        for csv_log in (self.epochs, self.steps, self.autolr, self.range_test):
            if csv_log:
                csv_log.close()


def _search_rows(result: SearchResult, steps_per_epoch: int):
    fit = result.fit
    for sample in result.samples:
        yield {
            "search_id": result.search_id, "step": result.step, "epoch": result.step / steps_per_epoch,
            "previous_lr": result.previous_lr, "max_lr": result.max_lr, "candidate_lr": sample.lr,
            "loss": sample.loss, "role": sample.role, "finite": bool(np.isfinite(sample.loss)),
            "a": fit.a if fit else "", "b": fit.b if fit else "", "c": fit.c if fit else "",
            "test_error": fit.test_error if fit else "",
            "proposal": result.decision.proposal if result.decision.proposal is not None else "",
            "chosen_lr": result.chosen_lr, "decision": result.decision.decision, "reason": result.decision.reason,
        }


def run(cfg: DictConfig, overrides: list[str]) -> Path:
    """Train one run as `cfg` describes and return its folder. Raises ReproError on bad input."""
    device = prepare(cfg)
    resuming = cfg.resume is not None
    folder = resume_folder(cfg.resume) if resuming else new_run_folder(cfg)
    handler = _attach_file_log(folder)
    try:
        if resuming:
            _check_resume_config(cfg, folder)
        else:
            (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        record = RunRecord(folder)
        record.start(overrides, device, resuming)
        log.info("run folder: %s", folder)
        _train(cfg, folder, device, record, resuming)
    finally:
        logging.getLogger("repro").removeHandler(handler)
        handler.close()
    return folder


def _train(cfg: DictConfig, folder: Path, device: torch.device, record: RunRecord, resuming: bool) -> None:
    parts = build_components(cfg, device)
    task, optimizer, train_step = parts.task, parts.optimizer, parts.train_step
    steps_per_epoch, total_steps = parts.steps_per_epoch, parts.total_steps

    autolr = cfg.schedule.kind == "autolr"
    logs = RunLogs(folder, task.metric_columns, autolr)

    def on_range_test(result: RangeTestResult) -> None:
        for row in result.rows():
            logs.range_test.write(row)
        record.update(range_test={"suggested_max_lr": result.suggested_lr, "rule": result.rule,
                                  "stop_reason": result.stop_reason, "steps": result.train_steps,
                                  "seconds": result.seconds})

    def on_search(result: SearchResult) -> None:
        for row in _search_rows(result, steps_per_epoch):
            logs.autolr.write(row)

    def make_tuner(config: AutoLRConfig) -> AutoLR:
        return AutoLR(task.model, optimizer, task.loss, parts.batch_source(), total_steps, config, train_step=train_step,
                      seed=cfg.seed, on_search=on_search, on_range_test=on_range_test)

    schedule = build_schedule(cfg.schedule, optimizer, cfg.opt.lr, steps_per_epoch, total_steps, make_tuner)
    trainer = Trainer(task, optimizer, schedule, train_step, logs.epochs, logs.steps, cfg.trainer, cfg.seed, folder)

    checkpoint = load_checkpoint(folder, device) if resuming else None
    if checkpoint:
        task.model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        set_rng_states(checkpoint["rng"])
        state = LoopState(checkpoint["epoch"], checkpoint["step"], checkpoint["elapsed"])
        logs.rewind(state.epoch, state.step, schedule.state_dict().get("search_count", 0), range_test_done=True)
        log.info("resuming from epoch %d, step %d", state.epoch, state.step)
    else:
        if resuming:
            log.info("no checkpoint in %s yet: starting the run again from step 0", folder)
        logs.rewind(0, 0, 0, range_test_done=False)
        state = LoopState()
        started = time.perf_counter()
        schedule.start()
        state.elapsed = time.perf_counter() - started  # the range test counts towards the run's time

    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt) if _in_main_thread() else None
    try:
        state = trainer.run(state)
    except DivergedError as error:
        record.finish("diverged", str(error), epochs_done=state.epoch)
        raise
    except KeyboardInterrupt:
        record.finish("interrupted", f"interrupted after {state.step} steps; continue with resume={folder}",
                      epochs_done=state.epoch)
        log.warning("interrupted: CSVs are flushed; continue with `repro run <same overrides> resume=%s`", folder)
        raise
    except Exception as error:
        record.finish("failed", f"{type(error).__name__}: {error}", epochs_done=state.epoch)
        raise
    finally:
        logs.close()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)

    if not cfg.trainer.keep_checkpoint:
        (folder / "checkpoint.pt").unlink(missing_ok=True)
    final_eval = task.final_evaluate(task.model)
    extra = schedule.extra
    train_seconds = state.elapsed - extra.seconds
    record.finish("completed", epochs_done=state.epoch, steps=state.step, final=trainer.last_metrics, final_eval=final_eval,
                  time_s=state.elapsed, autolr_time_s=extra.seconds,
                  autolr_extra_fraction=extra.seconds / train_seconds if train_seconds > 0 else None,
                  autolr_extra_steps=extra.train_steps, autolr_extra_forward=extra.forward_batches)
    log.info("done: results in %s", folder)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
