"""The `study` config group (conf/study/default.yaml) read into checked Python values."""

from __future__ import annotations

from numbers import Real

from omegaconf import DictConfig, ListConfig, OmegaConf

from ..autolr import AutoLRConfig, RangeTestConfig
from ..errors import ConfigError
from .noise_study import superbatch_from_study


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require(ok: bool, key: str, value, expected: str) -> None:
    """Raise ConfigError naming `key`, its value and what it must be, unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}; pass a valid {key}=...")


def search_options(cfg: DictConfig) -> AutoLRConfig:
    """Return the AutoLR search options the fit and noise studies imitate, from `study.autolr`.

    `max_lr` keeps the study's meaning (a cap on candidate LRs, None = no cap), not the tuner's
    (None = run a range test).
    """
    options = OmegaConf.to_container(cfg.study.autolr, resolve=True)
    cap = options.pop("max_lr", None)
    options = {key: value for key, value in options.items() if value is not None}  # null -> library default
    source = OmegaConf.select(cfg, "schedule.superbatch_from")
    if source and OmegaConf.select(cfg, "schedule.kind") == "autolr":
        options["superbatch"] = superbatch_from_study(source)  # as the tuner would read it
    require(cap is None or (_is_number(cap) and cap > 0), "study.autolr.max_lr", cap, "null or a number > 0")
    try:
        return AutoLRConfig(**options, max_lr=cap)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid study.autolr option: {error}") from error


def range_test_options(cfg: DictConfig) -> RangeTestConfig:
    options = OmegaConf.to_container(cfg.study.range_test, resolve=True)
    options.pop("epoch", None)
    options = {key: value for key, value in options.items() if value is not None}  # null -> library default
    try:
        return RangeTestConfig(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid study.range_test option: {error}") from error


def epoch_value(cfg: DictConfig, key: str, default: float) -> float:
    """Return a training point in epochs from `study.<key>` (null: `default`), checked to be >= 0."""
    value = OmegaConf.select(cfg, f"study.{key}")
    if value is None:
        return float(default)
    require(_is_number(value) and value >= 0, f"study.{key}", value, "a number of epochs >= 0")
    return float(value)


def fit_epochs(cfg: DictConfig) -> list[float]:
    """Return the fit study's training points in epochs, ascending (null: 10%, 50% and 90% of the run)."""
    value = cfg.study.fit.epochs
    if value is None:
        epochs = cfg.trainer.epochs
        return [0.1 * epochs, 0.5 * epochs, 0.9 * epochs]
    require(isinstance(value, (list, ListConfig)) and len(value) > 0
            and all(_is_number(e) and e >= 0 for e in value),
            "study.fit.epochs", value, "a non-empty list of epochs >= 0, e.g. [0.25,1,3]")
    return sorted(float(e) for e in value)


def check_fit_grid(cfg: DictConfig) -> tuple[float, int, float]:
    fit = cfg.study.fit
    require(_is_number(fit.grid_span) and fit.grid_span > 1, "study.fit.grid_span", fit.grid_span, "a number > 1")
    require(_is_int(fit.grid_points) and fit.grid_points >= 3, "study.fit.grid_points", fit.grid_points,
            "an integer >= 3")
    require(_is_number(fit.tolerance) and fit.tolerance > 0, "study.fit.tolerance", fit.tolerance, "a number > 0")
    return float(fit.grid_span), int(fit.grid_points), float(fit.tolerance)


def check_noise(cfg: DictConfig) -> tuple[int, int, float, float | None]:
    noise = cfg.study.noise
    require(_is_int(noise.max_superbatch) and noise.max_superbatch >= 2, "study.noise.max_superbatch",
            noise.max_superbatch, "an integer >= 2")
    require(_is_int(noise.draws) and noise.draws >= 2, "study.noise.draws", noise.draws, "an integer >= 2")
    require(_is_number(noise.fraction) and noise.fraction > 0, "study.noise.fraction", noise.fraction, "a number > 0")
    require(noise.gap is None or (_is_number(noise.gap) and noise.gap > 0), "study.noise.gap", noise.gap,
            "null or a number > 0")
    gap = None if noise.gap is None else float(noise.gap)
    return int(noise.max_superbatch), int(noise.draws), float(noise.fraction), gap
