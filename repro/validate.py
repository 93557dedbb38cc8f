"""Type and range checks on the composed config, so a bad override fails before any work starts.

Hydra accepts `trainer.epochs=abc` as a string; without these checks it would fail deep inside
the loop with an unrelated message.
"""

from __future__ import annotations

from numbers import Real

from omegaconf import DictConfig, ListConfig

from .errors import ConfigError


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# (key, check, what the value must be)
CHECKS = [
    ("seed", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("trainer.epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("trainer.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("trainer.eval_batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("trainer.log_every", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("trainer.checkpoint_every", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("trainer.num_workers", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("trainer.threads", lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1"),
    ("trainer.device", lambda v: isinstance(v, str), "a string: auto, cpu, cuda or cuda:N"),
    ("opt.lr", lambda v: _is_number(v) and v > 0, "a number > 0"),
    ("opt.weight_decay", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ("suffix", lambda v: v is None or (isinstance(v, (str, int)) and "/" not in str(v)), "null or a name without '/'"),
]

STEP_CHECKS = [
    ("schedule.milestones", lambda v: isinstance(v, (list, ListConfig)) and all(_is_int(m) and m >= 0 for m in v),
     "a list of epochs, e.g. [100,150]"),
    ("schedule.gamma", lambda v: _is_number(v) and v > 0, "a number > 0"),
    ("schedule.warmup_epochs", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
]

AUTOLR_CHECKS = [
    ("schedule.max_lr", lambda v: v is None or (_is_number(v) and v > 0), "null or a number > 0"),
    ("schedule.interval", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("schedule.trial_steps", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("schedule.superbatch", lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    ("schedule.n_fit", lambda v: _is_int(v) and v >= 3, "an integer >= 3"),
    ("schedule.n_test", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    ("schedule.explore_fraction", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("schedule.range_test.steps", lambda v: _is_int(v) and v >= 5, "an integer >= 5"),
]


def _is_fraction(value) -> bool:
    return _is_number(value) and 0 <= value < 1


# Peer schedules, by schedule.kind.
PEER_SCHEDULE_CHECKS = {
    "plateau": [
        ("schedule.monitor", lambda v: v is None or isinstance(v, str), "null or a metric name, e.g. test_loss"),
        ("schedule.mode", lambda v: v in (None, "min", "max"), "null, min or max"),
        ("schedule.factor", lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
        ("schedule.patience", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        ("schedule.threshold", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
        ("schedule.threshold_mode", lambda v: v in ("rel", "abs"), "rel or abs"),
        ("schedule.cooldown", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
        ("schedule.min_lr", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ],
    "cosine": [
        ("schedule.warmup_fraction", _is_fraction, "a number in [0, 1)"),
        ("schedule.eta_min", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ],
    "onecycle": [
        ("schedule.max_lr", lambda v: v is None or (_is_number(v) and v > 0), "null or a number > 0"),
        ("schedule.range_test.steps", lambda v: _is_int(v) and v >= 5, "an integer >= 5"),
        ("schedule.pct_start", lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
        ("schedule.anneal_strategy", lambda v: v in ("cos", "linear"), "cos or linear"),
        ("schedule.div_factor", lambda v: _is_number(v) and v > 0, "a number > 0"),
        ("schedule.final_div_factor", lambda v: _is_number(v) and v > 0, "a number > 0"),
        ("schedule.three_phase", lambda v: isinstance(v, bool), "true or false"),
        ("schedule.cycle_momentum", lambda v: isinstance(v, bool), "true or false"),
    ],
    "knee": [
        ("schedule.explore_fraction", _is_fraction, "a number in [0, 1)"),
        ("schedule.warmup_fraction", _is_fraction, "a number in [0, 1)"),
    ],
}

# LR-free optimizers, by opt.name (opt.lr and opt.weight_decay are checked for every optimizer).
_WARMUP = ("opt.warmup_steps", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
_BN_BATCHES = ("opt.bn_recalibration_batches", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
_SF_MOMENTUM = ("opt.momentum", lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)")
_BETAS = ("opt.betas", lambda v: isinstance(v, (list, ListConfig)) and len(v) == 2
          and all(_is_number(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1), e.g. [0.9,0.999]")
LR_FREE_OPT_CHECKS = {
    "schedulefree_sgd": [_SF_MOMENTUM, _WARMUP, _BN_BATCHES],
    "schedulefree_adamw": [_BETAS, _WARMUP, _BN_BATCHES],
    "prodigy": [_BETAS, ("opt.d_coef", lambda v: _is_number(v) and v > 0, "a number > 0")],
    "dadapt_sgd": [("opt.momentum", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")],
    "dadapt_adam": [_BETAS],
}


def _lookup(cfg: DictConfig, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first value of the wrong type or range, and the fix."""
    checks = list(CHECKS)
    kind = cfg.schedule.get("kind")
    if kind == "step":
        checks += STEP_CHECKS
    elif kind == "inverse_sqrt":
        checks.append(("schedule.warmup_steps", lambda v: _is_int(v) and v >= 1, "an integer >= 1"))
    elif kind == "linear":
        checks.append(("schedule.warmup_fraction", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"))
    elif kind == "autolr":
        checks += AUTOLR_CHECKS
    elif kind in PEER_SCHEDULE_CHECKS:
        checks += PEER_SCHEDULE_CHECKS[kind]
    checks += LR_FREE_OPT_CHECKS.get(cfg.opt.get("name"), [])
    for key, check, expected in checks:
        value = _lookup(cfg, key)
        if isinstance(value, DictConfig) or not check(value):
            raise ConfigError(f"invalid value {key}={value!r} ({type(value).__name__}); expected {expected}")
