"""The three study jobs: compose config -> training state -> measurements -> CSV and run.json."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from ..autolr import candidate_lrs, run_range_test
from ..components import prepare
from ..errors import ReproError
from ..results.csvlog import CsvLog
from ..results.run_dir import RunRecord
from ..results.schema import FIT_STUDY_COLUMNS, NOISE_STUDY_COLUMNS, RANGE_TEST_COLUMNS
from . import options
from .fit_study import describe, fit_point
from .measure import FrozenState, lr_setter
from .noise_study import estimate_superbatch, neighbour_gap, noise_table, pick_superbatch, superbatch_sizes
from .record import Cost, run_study
from .state import TrainingState

log = logging.getLogger(__name__)


def _generator(seed: int, stream: int) -> torch.Generator:
    """Seeded generator for a study's batch draws. Stream -1 is the one AutoLR's range test uses."""
    return torch.Generator().manual_seed((seed * 1_000_003 + stream + 1) % (2**63))


def _search_summary(search) -> dict:
    keys = ("trial_steps", "superbatch", "n_fit", "n_test", "spacing", "measure_in_train_mode", "trust_factor")
    return {key: getattr(search, key) for key in keys} | {"max_lr_cap": search.max_lr}


def _finish_cost(cost: Cost, state: TrainingState) -> dict:
    cost.training_steps = state.training_steps
    extra = state.autolr_extra()
    cost.autolr_steps, cost.autolr_forward_batches = extra["train_steps"], extra["forward_batches"]
    summary = cost.as_dict()
    print(cost.describe())
    return summary


# -- range test ------------------------------------------------------------------------------

def range_test_job(cfg: DictConfig, overrides: list[str]) -> Path:
    """Run `repro range-test`: one LR sweep at the chosen training point, written to range_test.csv."""
    device = prepare(cfg)
    sweep = options.range_test_options(cfg)
    epoch = options.epoch_value(cfg, "range_test.epoch", 0.0)

    def body(folder: Path, record: RunRecord) -> None:
        state = TrainingState(cfg, device)
        cost = Cost(state.parts.batch_size)
        if epoch > 0:  # epoch 0 keeps the starting state: the fresh model or study.checkpoint
            state.advance_to(state.step_at(epoch))
        # The stream AutoLR's own range test draws from, so on a fresh model this sweep is the tuner's.
        result = run_range_test(state.model, state.optimizer, state.train_step, state.parts.batch_source(),
                                sweep, _generator(cfg.seed, -1), lr_setter(state.optimizer))
        cost.study_steps = result.train_steps
        csv_log = CsvLog(folder / "range_test.csv", RANGE_TEST_COLUMNS)
        for row in result.rows():
            csv_log.write(row)
        csv_log.close()

        smoothed = np.asarray(result.smoothed)
        lowest = int(np.argmin(smoothed)) if smoothed.size else None
        summary = {
            "suggested_max_lr": result.suggested_lr, "rule": result.rule, "stop_reason": result.stop_reason,
            "epoch": state.step / state.steps_per_epoch, "step": state.step, "sweep": asdict(sweep),
            "points": len(result.lrs),
            "lr_at_lowest_smoothed_loss": result.lrs[lowest] if lowest is not None else None,
            "lowest_smoothed_loss": float(smoothed[lowest]) if lowest is not None else None,
        }
        print(f"suggested max LR {result.suggested_lr:.4g} ({result.rule}); sweep stopped: {result.stop_reason}")
        record.update(range_test=summary, cost=_finish_cost(cost, state))
        if not math.isfinite(result.suggested_lr):
            raise ReproError(f"the range test found no usable LR ({result.stop_reason}); widen "
                             "study.range_test.min_lr/max_lr or raise study.range_test.steps")

    return run_study(cfg, overrides, "range_test", "range-test", device, body)


# -- fit study -------------------------------------------------------------------------------

def fit_study_job(cfg: DictConfig, overrides: list[str]) -> Path:
    """Run `repro fit-study`: the quadratic fit tested on a dense LR grid at several training points."""
    device = prepare(cfg)
    search = options.search_options(cfg)
    epochs = options.fit_epochs(cfg)
    grid_span, grid_points, tolerance = options.check_fit_grid(cfg)

    def body(folder: Path, record: RunRecord) -> None:
        state = TrainingState(cfg, device)
        cost = Cost(state.parts.batch_size)
        batch_source = state.parts.batch_source()
        csv_log = CsvLog(folder / "fit_study.csv", FIT_STUDY_COLUMNS)
        fits = []
        for fit_id, epoch in enumerate(epochs):
            state.advance_to(state.step_at(epoch))
            current_lr = state.current_lr()
            drawn = batch_source.draw(search.trial_steps + search.superbatch, _generator(cfg.seed, fit_id))
            trial, superbatch = drawn[:search.trial_steps], drawn[search.trial_steps:]
            with FrozenState(state.model, state.optimizer, state.train_step, state.task.loss,
                             search.measure_in_train_mode) as frozen:
                point = fit_point(lambda lr: frozen.loss_after_trial(lr, trial, superbatch), current_lr, search,
                                  state.candidate_cap(search.max_lr), grid_span, grid_points, tolerance)
            cost.study_steps += frozen.train_steps
            cost.forward_batches += frozen.forward_batches

            at_epoch = state.step / state.steps_per_epoch
            _write_fit_rows(csv_log, fit_id, at_epoch, state.step, point)
            fits.append({"fit_id": fit_id, "epoch": at_epoch, "step": state.step, **point.summary()})
            line = describe(fit_id, at_epoch, point)
            log.info(line)
            print(line)
            record.update(fit_study={"fits": fits})  # partial results survive an interruption
        csv_log.close()
        record.update(fit_study={"fits": fits, "grid_span": grid_span, "grid_points": grid_points,
                                 "tolerance": tolerance, "search": _search_summary(search)},
                      cost=_finish_cost(cost, state))

    return run_study(cfg, overrides, "fit_study", "fit-study", device, body)


def _write_fit_rows(csv_log: CsvLog, fit_id: int, epoch: float, step: int, point) -> None:
    fit = point.fit
    for lr, loss, role in point.rows():
        csv_log.write({
            "fit_id": fit_id, "epoch": epoch, "step": step, "lr": lr, "loss": loss, "role": role,
            "finite": bool(math.isfinite(loss)),
            "a": fit.a if fit else "", "b": fit.b if fit else "", "c": fit.c if fit else "",
            "minimum_lr": point.minimum_lr if point.minimum_lr is not None else "",
            "minimum_inside": point.minimum_inside if point.minimum_inside is not None else "",
            "test_error": point.test_error if point.test_error is not None else "",
        })


# -- noise study -----------------------------------------------------------------------------

def noise_study_job(cfg: DictConfig, overrides: list[str]) -> Path:
    """Run `repro noise-study`: std of the superbatch loss vs its size, and the size AutoLR needs."""
    device = prepare(cfg)
    search = options.search_options(cfg)
    epoch = options.epoch_value(cfg, "noise.epoch", 0.5 * cfg.trainer.epochs)
    max_superbatch, draws, fraction, given_gap = options.check_noise(cfg)
    sizes = superbatch_sizes(max_superbatch)

    def body(folder: Path, record: RunRecord) -> None:
        state = TrainingState(cfg, device)
        cost = Cost(state.parts.batch_size)
        batch_source = state.parts.batch_source()
        if cfg.study.noise.epoch is not None or not cfg.study.checkpoint:  # else: measure at the checkpoint
            state.advance_to(state.step_at(epoch))
        current_lr = state.current_lr()

        with FrozenState(state.model, state.optimizer, state.train_step, state.task.loss,
                         search.measure_in_train_mode) as frozen:
            generator = _generator(cfg.seed, 0)
            losses = np.array([[float(loss) for loss in frozen.batch_losses(batch_source.draw(max_superbatch,
                                                                                             generator))]
                               for _ in range(draws)])
            candidates, gap = [], given_gap
            if gap is None:
                candidates, gap = _measure_gap(frozen, batch_source, current_lr, search, state, max_superbatch,
                                               _generator(cfg.seed, 1))
        cost.study_steps = frozen.train_steps
        cost.forward_batches = frozen.forward_batches

        rows = noise_table(losses, sizes)
        csv_log = CsvLog(folder / "noise_study.csv", NOISE_STUDY_COLUMNS)
        for row in rows:
            csv_log.write(row)
        csv_log.close()
        for row in rows:
            log.info("superbatch %3d: mean loss %.4f, std %.4g over %d draws", row["superbatch"], row["mean_loss"],
                     row["std_loss"], row["draws"])

        if not math.isfinite(gap) or gap <= 0:
            raise ReproError(f"the loss gap between AutoLR's neighbouring candidates is {gap} at LR {current_lr:.3g} "
                             "(diverged or identical candidates); pass study.noise.gap=<loss difference> or "
                             "choose another study.noise.epoch")
        threshold = fraction * gap
        chosen = pick_superbatch(rows, threshold)
        estimate = estimate_superbatch(rows, threshold)
        summary = {
            "epoch": state.step / state.steps_per_epoch, "step": state.step, "current_lr": current_lr,
            "gap": gap, "gap_measured": given_gap is None, "candidates": candidates, "fraction": fraction,
            "threshold": threshold, "chosen_superbatch": chosen, "estimated_superbatch": estimate,
            "max_superbatch": max_superbatch, "draws": draws, "search": _search_summary(search),
        }
        if chosen is None:
            print(f"no superbatch up to {max_superbatch} mini-batches has std below {threshold:.4g} "
                  f"({fraction:g} x gap {gap:.4g}); about {estimate} would, if the std falls as 1/sqrt(size)")
        else:
            print(f"superbatch {chosen}: smallest size with std below {threshold:.4g} ({fraction:g} x gap {gap:.4g} "
                  f"between AutoLR's neighbouring candidates at LR {current_lr:.3g}); "
                  f"use with schedule.superbatch={chosen}")
        record.update(noise_study=summary, cost=_finish_cost(cost, state))

    return run_study(cfg, overrides, "noise_study", "noise-study", device, body)


def _measure_gap(frozen: FrozenState, batch_source, current_lr: float, search, state: TrainingState,
                 superbatch_size: int, generator: torch.Generator) -> tuple[list[dict], float]:
    """Measure AutoLR's fit candidates on one large superbatch. Returns them and their median gap."""
    fit_lrs, _ = candidate_lrs(current_lr, state.candidate_cap(search.max_lr), search.n_fit, 0, search.spacing)
    drawn = batch_source.draw(search.trial_steps + superbatch_size, generator)
    trial, superbatch = drawn[:search.trial_steps], drawn[search.trial_steps:]
    losses = [frozen.loss_after_trial(lr, trial, superbatch) for lr in fit_lrs]
    gap = neighbour_gap(losses)
    log.info("AutoLR candidates at LR %.3g: %s; median neighbouring gap %.4g", current_lr,
             ", ".join(f"{lr:.3g}:{loss:.4f}" for lr, loss in zip(fit_lrs, losses)), gap)
    return [{"lr": lr, "loss": loss} for lr, loss in zip(fit_lrs, losses)], gap
