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
from .distributed import SINGLE, DistEnv, broadcast_object, init_distributed, per_rank_batch_size, rank_device, \
    shutdown_distributed
from .errors import ConfigError, DivergedError
from .results.csvlog import CsvLog
from .results.run_dir import RunRecord, new_run_folder, resume_folder, run_folder_name
from .results.schema import AUTOLR_COLUMNS, RANGE_TEST_COLUMNS, STEP_COLUMNS, epoch_columns
from .schedules import build_schedule
from .train.checkpoint import load_checkpoint, set_rng_states
from .train.loop import LoopState, Trainer

log = logging.getLogger(__name__)

# Keys that may differ between a run and its resume: where files live, and the resume flag.
RESUME_IGNORED_KEYS = ("resume", "paths")
RESUME_IGNORED_OPTIONS = ("trainer.auto_resume",)
# run.json statuses that trainer.auto_resume continues; completed and diverged runs are final.
UNFINISHED_STATUSES = ("running", "interrupted", "failed")


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
    for key in RESUME_IGNORED_OPTIONS:
        saved.pop(key, None)
        current.pop(key, None)
    differences = [key for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if differences:
        listed = ", ".join(f"{key} (run: {saved.get(key)!r}, now: {current.get(key)!r})" for key in differences[:3])
        raise ConfigError(f"resume={folder}: overrides differ from the run's config.yaml: {listed}; "
                          "pass the same overrides as the first run")


class _NullLog:
    """Stands in for a CsvLog on data-parallel ranks other than 0, which write no files."""

    def write(self, row: dict) -> None:
        pass

    def keep_rows(self, keep) -> int:
        return 0

    def close(self) -> None:
        pass


class _NullRecord:
    """Stands in for RunRecord on data-parallel ranks other than 0."""

    def start(self, *args, **kwargs) -> None:
        pass

    def finish(self, *args, **kwargs) -> None:
        pass

    def update(self, **fields) -> None:
        pass


class RunLogs:
    """The CSV files of one run (no-ops on data-parallel ranks other than 0)."""

    def __init__(self, folder: Path, metric_columns, autolr: bool, write: bool = True):
        if not write:
            self.epochs = self.steps = _NullLog()
            self.autolr = self.range_test = _NullLog() if autolr else None
            return
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


def _unfinished_folder(cfg: DictConfig) -> Path | None:
    """Find the newest unfinished run folder of this run's name (seed0, seed0-2, ...) with the same config."""
    base = Path(cfg.paths.results_dir) / run_folder_name(cfg)
    if not base.parent.is_dir():
        return None
    found = []
    for folder in [base, *base.parent.glob(f"{base.name}-*")]:
        suffix = folder.name[len(base.name) + 1:]
        if folder != base and not suffix.isdigit():
            continue
        record = folder / "run.json"
        if not record.is_file() or not (folder / "config.yaml").is_file():
            continue
        if RunRecord(folder).data.get("status") not in UNFINISHED_STATUSES:
            continue
        try:
            _check_resume_config(cfg, folder)
        except ConfigError:
            continue
        found.append((record.stat().st_mtime, folder))
    return max(found)[1] if found else None


def _choose_folder(cfg: DictConfig) -> tuple[Path, bool]:
    """Pick the run folder and whether the run resumes. Only rank 0 calls this, because it creates folders."""
    if cfg.resume is not None:
        return resume_folder(cfg.resume), True
    if cfg.trainer.get("auto_resume", False):
        folder = _unfinished_folder(cfg)
        if folder is not None:
            log.info("trainer.auto_resume: continuing the unfinished run in %s", folder)
            return folder, True
    return new_run_folder(cfg), False


def run(cfg: DictConfig, overrides: list[str]) -> Path:
    """Train one run as `cfg` describes and return its folder. Raises ReproError on bad input.

    Under torchrun every rank calls this; rank 0 picks the folder and writes every file.
    """
    env = init_distributed(cfg.trainer.device)
    try:
        device = rank_device(prepare(cfg), env)
        if not env.is_main:
            logging.getLogger("repro").setLevel(logging.WARNING)
        folder, resuming = broadcast_object(_choose_folder(cfg) if env.is_main else None, env)
        _run_in_folder(cfg, overrides, folder, device, resuming, env)
    finally:
        shutdown_distributed(env)
    return folder


def _run_in_folder(cfg: DictConfig, overrides: list[str], folder: Path, device: torch.device, resuming: bool,
                   env: DistEnv) -> None:
    handler = _attach_file_log(folder) if env.is_main else None
    try:
        if resuming:
            _check_resume_config(cfg, folder)
        elif env.is_main:
            (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        record = RunRecord(folder) if env.is_main else _NullRecord()
        record.start(overrides, device, resuming)
        log.info("run folder: %s", folder)
        if env.enabled:
            per_process = per_rank_batch_size(cfg.trainer.batch_size, env)
            log.info("data parallel: %d processes, global batch %d, %d per process", env.world_size,
                     cfg.trainer.batch_size, per_process)
            record.update(data_parallel={"processes": env.world_size, "backend": torch.distributed.get_backend(),
                                         "global_batch": cfg.trainer.batch_size, "per_process_batch": per_process})
        try:
            _train(cfg, folder, device, record, resuming, env)
        except Exception as error:
            # _train records how the training loop ended. A failure before the loop (data, model,
            # range test) would otherwise leave run.json at "running".
            if getattr(record, "data", {}).get("status") == "running":
                record.finish("failed", f"{type(error).__name__}: {error}")
            raise
    finally:
        if handler is not None:
            logging.getLogger("repro").removeHandler(handler)
            handler.close()


def _train(cfg: DictConfig, folder: Path, device: torch.device, record: RunRecord, resuming: bool,
           env: DistEnv = SINGLE) -> None:
    parts = build_components(cfg, device, env)
    task, optimizer, train_step = parts.task, parts.optimizer, parts.train_step
    steps_per_epoch, total_steps = parts.steps_per_epoch, parts.total_steps

    autolr = cfg.schedule.kind == "autolr"
    logs = RunLogs(folder, task.metric_columns, autolr, write=env.is_main)

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
        return AutoLR(task.model, optimizer, parts.loss_fn or task.loss, parts.batch_source(), total_steps, config,
                      train_step=train_step,
                      seed=cfg.seed, on_search=on_search, on_range_test=on_range_test)

    schedule = build_schedule(cfg.schedule, optimizer, cfg.opt.lr, steps_per_epoch, total_steps, make_tuner)
    precision = parts.precision
    trainer = Trainer(task, optimizer, schedule, train_step, logs.epochs, logs.steps, cfg.trainer, cfg.seed, folder,
                      env, *((precision.autocast, precision.scaler) if precision else ()))

    checkpoint = load_checkpoint(folder, device) if resuming else None
    if checkpoint:
        task.model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        set_rng_states(checkpoint["rng"])
        if "scaler" in checkpoint and precision and precision.scaler is not None:
            precision.scaler.load_state_dict(checkpoint["scaler"])
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

    if not cfg.trainer.keep_checkpoint and env.is_main:
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
