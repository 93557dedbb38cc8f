"""The AutoLR tuner: picks the learning rate while training runs, for any torch optimizer.

Use it in any training loop:

    tuner = AutoLR(model, optimizer, loss_fn, DatasetBatchSource(train_set, 128), total_steps)
    tuner.start()                      # LR range test -> max LR (skipped if config.max_lr is set)
    for step, batch in enumerate(batches):
        tuner.update(step)             # sets the LR for this step; searches when one is due
        ...usual forward / backward / optimizer.step()...

Phases: explore at the max LR for `explore_fraction` of the steps, then every `interval` steps
search: snapshot the training state, try each candidate LR for `trial_steps` steps on the same
batches, measure the loss on the same superbatch, fit a quadratic, restore, and set the chosen LR.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .batches import BatchSource
from .config import AutoLRConfig
from .fit import Decision, QuadraticFit, choose_lr
from .range_test import RangeTestResult, run_range_test
from .ranks import check_same_value, mean_loss
from .snapshot import TrainingSnapshot

log = logging.getLogger(__name__)

LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


@dataclass
class Sample:
    """One measured candidate: its LR, superbatch loss (NaN if it diverged) and role."""

    lr: float
    loss: float
    role: str  # fit, test or verify


@dataclass
class SearchResult:
    """Everything one search measured and decided."""

    search_id: int
    step: int
    previous_lr: float
    max_lr: float
    samples: list[Sample]
    fit: QuadraticFit | None
    decision: Decision
    chosen_lr: float
    train_steps: int = 0
    forward_batches: int = 0
    seconds: float = 0.0


@dataclass
class ExtraCompute:
    """Work the tuner does beyond the training run itself."""

    train_steps: int = 0      # forward+backward+step passes (range test and trial steps)
    forward_batches: int = 0  # forward-only mini-batches (superbatch losses)
    seconds: float = 0.0      # wall time of the range test and all searches

    def add(self, train_steps: int, forward_batches: int, seconds: float) -> None:
        self.train_steps += train_steps
        self.forward_batches += forward_batches
        self.seconds += seconds


def make_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn):
    """Return the plain step used by default: zero grads, forward, backward, optimizer step."""

    def train_step(batch) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return train_step


def candidate_lrs(current: float, max_lr: float, n_fit: int, n_test: int, spacing: float
                  ) -> tuple[list[float], list[float]]:
    """Return log-spaced fit LRs around `current` (none above `max_lr`) and held-out test LRs.

    The fit LRs are current * spacing^k for k from -(n_fit - 1 - up) to up, with up =
    (n_fit - 1) // 2, shifted down as a block when the top would pass max_lr. Test LRs sit at
    the geometric midpoints nearest the current LR, then just outside the fitted range.
    """
    up = (n_fit - 1) // 2
    top = min(current * spacing**up, max_lr)
    fit = [top / spacing**k for k in range(n_fit)][::-1]

    middles = [math.sqrt(low * high) for low, high in zip(fit, fit[1:])]
    middles.sort(key=lambda lr: abs(math.log(lr / current)))
    outside = [fit[0] / math.sqrt(spacing)]
    if fit[-1] * math.sqrt(spacing) <= max_lr:
        outside.append(fit[-1] * math.sqrt(spacing))
    test = (middles + outside)[:n_test]
    return fit, test


class AutoLR:
    """Automatic LR tuning by periodic quadratic fits of loss against LR.

    Args:
        model, optimizer: what to tune. Every param group gets the same LR, scaled by its
            initial ratio to the first group.
        loss_fn: `loss_fn(model, batch)` returns the mean loss of a batch as a scalar tensor.
        batches: source of the trial batches and superbatches (see batches.py).
        total_steps: planned training steps, which size the explore phase.
        config: algorithm options (AutoLRConfig defaults if None).
        train_step: `train_step(batch)` takes one optimizer step and returns the loss. Defaults
            to zero_grad/forward/backward/step; pass your own to match gradient clipping or AMP.
        seed: seeds the batch draws, so each search's batches depend only on (seed, search id).
        on_search, on_range_test: callbacks receiving each SearchResult / the RangeTestResult.

    Data parallelism: when a torch.distributed process group of several ranks is initialized,
    every rank must call the tuner with the same seed. Its `batches` source must draw that
    rank's slices of the same global batches, and its `train_step` must average gradients (a
    DistributedDataParallel model). Losses are then averaged across ranks before each
    decision, and a RuntimeError is raised if the ranks choose different LRs.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                 batches: BatchSource, total_steps: int, config: AutoLRConfig | None = None,
                 train_step: Callable[[Any], torch.Tensor] | None = None, seed: int = 0,
                 on_search: Callable[[SearchResult], None] | None = None,
                 on_range_test: Callable[[RangeTestResult], None] | None = None):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.batches = batches
        self.total_steps = total_steps
        self.config = config or AutoLRConfig()
        self.train_step = train_step or make_train_step(model, optimizer, loss_fn)
        self.seed = seed
        self.on_search = on_search
        self.on_range_test = on_range_test

        first = optimizer.param_groups[0]["lr"] or 1.0
        self._group_scales = [(group["lr"] or first) / first for group in optimizer.param_groups]
        self._snapshot = TrainingSnapshot(model, optimizer)

        self.max_lr: float | None = self.config.max_lr
        self.lr: float | None = self.config.max_lr
        self.explore_steps = int(self.config.explore_fraction * total_steps)
        self.next_search_step = self.explore_steps
        self.search_count = 0
        self.extra = ExtraCompute()

    # -- public API --------------------------------------------------------------------------

    def start(self) -> float:
        """Find the max LR with the range test unless it is known, and set it. Returns it."""
        if self.max_lr is None:
            generator = torch.Generator().manual_seed(self._seed_for(-1))
            result = run_range_test(self.model, self.optimizer, self.train_step, self.batches,
                                    self.config.range_test, generator, self.set_lr)
            self.extra.add(result.train_steps, 0, result.seconds)
            check_same_value(result.suggested_lr, "the range test's max LR")
            if not math.isfinite(result.suggested_lr) or result.suggested_lr <= 0:
                raise RuntimeError(f"LR range test found no usable max LR ({result.stop_reason}); "
                                   "set max_lr explicitly")
            self.max_lr = result.suggested_lr
            if self.on_range_test:
                self.on_range_test(result)
        if self.lr is None:
            self.lr = self.max_lr
        self.set_lr(self.lr)
        return self.max_lr

    def update(self, step: int) -> float:
        """Set the LR for training step `step` (0-based), searching first when one is due."""
        if self.max_lr is None:
            raise RuntimeError("AutoLR.update() called before AutoLR.start()")
        if step >= self.next_search_step:
            self.search(step)
            self.next_search_step = step + self.config.interval
        self.set_lr(self.lr)
        return self.lr

    def search(self, step: int) -> SearchResult:
        """Measure the candidates around the current LR, choose one, and restore the state."""
        started = time.perf_counter()
        config = self.config
        generator = torch.Generator().manual_seed(self._seed_for(self.search_count))
        drawn = self.batches.draw(config.trial_steps + config.superbatch, generator)
        trial, superbatch = drawn[: config.trial_steps], drawn[config.trial_steps:]

        was_training = self.model.training
        previous_lr = self.lr
        fit_lrs, test_lrs = candidate_lrs(previous_lr, self.max_lr, config.n_fit, config.n_test,
                                          config.spacing)
        self._snapshot.capture()
        samples = [Sample(lr, self._measure(lr, trial, superbatch), "fit") for lr in fit_lrs]
        samples += [Sample(lr, self._measure(lr, trial, superbatch), "test") for lr in test_lrs]

        decision, fit = choose_lr([(s.lr, s.loss, s.role) for s in samples], previous_lr,
                                  max_lr=self.max_lr, min_lr=config.min_lr,
                                  trust_factor=config.trust_factor, max_test_error=config.max_test_error)
        if config.verify and decision.decision.startswith("fit"):
            decision = self._verify(decision, samples, trial, superbatch)

        self._snapshot.restore()
        self.model.train(was_training)
        check_same_value(decision.lr, f"the LR chosen by search {self.search_count}")
        self.lr = decision.lr

        measured = len(samples)
        result = SearchResult(
            search_id=self.search_count, step=step, previous_lr=previous_lr, max_lr=self.max_lr,
            samples=samples, fit=fit, decision=decision, chosen_lr=decision.lr,
            train_steps=measured * config.trial_steps, forward_batches=measured * config.superbatch,
            seconds=time.perf_counter() - started)
        self.extra.add(result.train_steps, result.forward_batches, result.seconds)
        self.search_count += 1
        self._log(result)
        if self.on_search:
            self.on_search(result)
        return result

    def set_lr(self, lr: float) -> None:
        for group, scale in zip(self.optimizer.param_groups, self._group_scales):
            group["lr"] = lr * scale

    def state_dict(self) -> dict:
        return {
            "max_lr": self.max_lr, "lr": self.lr, "next_search_step": self.next_search_step,
            "search_count": self.search_count, "extra": vars(self.extra).copy(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.max_lr = state["max_lr"]
        self.lr = state["lr"]
        self.next_search_step = state["next_search_step"]
        self.search_count = state["search_count"]
        self.extra = ExtraCompute(**state["extra"])

    # -- internals ---------------------------------------------------------------------------

    def _seed_for(self, search_id: int) -> int:
        return (self.seed * 1_000_003 + search_id + 1) % (2**63)

    def _measure(self, lr: float, trial: list, superbatch: list) -> float:
        """Restore the snapshot, train `trial` at `lr`, return the mean superbatch loss (NaN if diverged)."""
        self._snapshot.restore()
        self.set_lr(lr)
        self.model.train()
        for batch in trial:
            if not math.isfinite(mean_loss(self.train_step(batch))):
                return float("nan")

        self.model.train(self.config.measure_in_train_mode)
        with torch.no_grad():
            losses = torch.stack([self.loss_fn(self.model, batch).detach().float() for batch in superbatch])
        loss = mean_loss(losses.mean())  # averaged across data-parallel ranks before any fit
        return loss if math.isfinite(loss) else float("nan")

    def _verify(self, decision: Decision, samples: list[Sample], trial: list, superbatch: list) -> Decision:
        """Measure the loss at the proposal; fall back to the best sample if one beat it."""
        loss = self._measure(decision.lr, trial, superbatch)
        samples.append(Sample(decision.lr, loss, "verify"))
        finite = [s for s in samples if s.role != "verify" and math.isfinite(s.loss)]
        best = min(finite, key=lambda s: s.loss)
        if math.isfinite(loss) and loss <= best.loss:
            return decision
        reason = f"verify: loss {loss:.4g} at proposal {decision.lr:.3g} > best sample {best.loss:.4g}"
        return Decision(best.lr, "best_sample", reason, decision.proposal)

    def _log(self, result: SearchResult) -> None:
        sampled = ", ".join(f"{s.lr:.3g}:{s.loss:.4g}{'' if s.role == 'fit' else '(' + s.role + ')'}"
                            for s in result.samples)
        curvature = f"a={result.fit.a:.3g}" if result.fit else "no fit"
        reason = f" ({result.decision.reason})" if result.decision.reason else ""
        log.info("AutoLR search %d at step %d: lr %.4g -> %.4g [%s%s]; %s; candidates %s",
                 result.search_id, result.step, result.previous_lr, result.chosen_lr,
                 result.decision.decision, reason, curvature, sampled)

