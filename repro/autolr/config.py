"""Options of the AutoLR tuner. conf/schedule/autolr.yaml mirrors these fields for `repro run`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RangeTestConfig:
    """LR range test: one short run at growing LRs that picks the max LR."""

    min_lr: float = 1e-5         # first LR of the sweep
    max_lr: float = 10.0         # last LR of the sweep
    steps: int = 50              # training steps, one LR each
    mode: str = "exp"            # "exp" (log-spaced) or "linear"
    smoothing: float = 0.8       # EMA factor for the smoothed loss, bias corrected
    diverge_factor: float = 4.0  # stop once the smoothed loss exceeds this multiple of its best
    safety: float = 1.0          # multiplies the suggested LR

    def __post_init__(self):
        if self.mode not in ("exp", "linear"):
            raise ValueError(f"range test mode must be 'exp' or 'linear', got {self.mode!r}")
        if not 0 < self.min_lr < self.max_lr:
            raise ValueError(f"range test needs 0 < min_lr < max_lr, got {self.min_lr} and {self.max_lr}")
        if self.steps < 5:
            raise ValueError(f"range test needs at least 5 steps, got {self.steps}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"range test smoothing must lie in [0, 1), got {self.smoothing}")


@dataclass
class AutoLRConfig:
    """Every choice of the algorithm, with the defaults `repro run` uses."""

    max_lr: float | None = None  # None runs the range test; a number skips it
    range_test: RangeTestConfig = field(default_factory=RangeTestConfig)
    explore_fraction: float = 0.3  # share of all steps trained at max_lr before the first search
    interval: int = 200            # training steps between searches
    trial_steps: int = 2           # optimizer steps each candidate takes from the snapshot
    superbatch: int = 4            # mini-batches in the loss estimate after the trial steps
    n_fit: int = 4                 # candidate LRs used by the quadratic fit
    n_test: int = 1                # held-out candidate LRs that test the fit
    spacing: float = 2.0           # ratio between neighbouring fit candidates
    measure_in_train_mode: bool = True  # superbatch loss in train mode (batch statistics), no gradients
    trust_factor: float = 2.0      # proposals stay within [min sampled / f, max sampled * f]
    max_test_error: float = 0.5    # fallback above this test error (fraction of the fitted loss range)
    verify: bool = True            # measure the loss at the proposal and fall back if a sample beats it
    min_lr: float = 1e-6           # floor for any chosen LR

    def __post_init__(self):
        if isinstance(self.range_test, dict):
            self.range_test = RangeTestConfig(**self.range_test)
        checks = [
            (self.n_fit >= 3, f"n_fit must be at least 3 for a quadratic fit, got {self.n_fit}"),
            (self.n_test >= 0, f"n_test must be >= 0, got {self.n_test}"),
            (self.trial_steps >= 1, f"trial_steps must be >= 1, got {self.trial_steps}"),
            (self.superbatch >= 1, f"superbatch must be >= 1, got {self.superbatch}"),
            (self.interval >= 1, f"interval must be >= 1, got {self.interval}"),
            (self.spacing > 1, f"spacing must be > 1, got {self.spacing}"),
            (self.trust_factor >= 1, f"trust_factor must be >= 1, got {self.trust_factor}"),
            (0 <= self.explore_fraction < 1, f"explore_fraction must lie in [0, 1), got {self.explore_fraction}"),
            (self.max_lr is None or self.max_lr > 0, f"max_lr must be positive, got {self.max_lr}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
