"""AutoLR studies: range-test suggestion and state, quadratic-fit study, superbatch noise study,
the three study commands end to end on the digits data, and the plateau experiment configs."""

from __future__ import annotations

import copy
import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from repro.autolr import AutoLRConfig, RangeTestConfig, run_range_test, suggest_max_lr
from repro.autolr.range_test import sweep_lrs
from repro.components import build_components, prepare
from repro.errors import ConfigError
from repro.results.schema import FIT_STUDY_COLUMNS, NOISE_STUDY_COLUMNS, RANGE_TEST_COLUMNS
from repro.studies import superbatch_from_study
from repro.studies.fit_study import fit_point
from repro.studies.measure import FrozenState, lr_setter
from repro.studies.noise_study import noise_table, pick_superbatch, superbatch_sizes

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.threads=1", "trainer.progress=false"]


def compose_config(overrides: list[str]):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def only_folder(results: Path, middle: str) -> Path:
    folders = sorted(results.glob(f"*/{middle}/seed*"))
    assert len(folders) == 1, folders
    return folders[0]


# -- range test: suggestion rule -------------------------------------------------------------

def synthetic_curve(x: np.ndarray, centre: float) -> np.ndarray:
    """Loss against log10 LR: a tanh fall centred at `centre`, then a quadratic rise 1.5 decades later."""
    return 2.0 - np.tanh((x - centre) / 0.4) + 4.0 * np.clip(x - centre - 1.5, 0, None) ** 2


def true_steepest_index(x: np.ndarray, centre: float) -> int:
    """Grid index nearest the steepest fall of the exact curve before its minimum."""
    fine = np.linspace(x[0], x[-1], 20_001)
    fine_loss = synthetic_curve(fine, centre)
    slope = np.gradient(fine_loss, fine)
    before_minimum = fine <= fine[int(np.argmin(fine_loss))]
    steepest_x = fine[before_minimum][int(np.argmin(slope[before_minimum]))]
    return int(np.argmin(np.abs(x - steepest_x)))


@pytest.mark.parametrize("centre", [-3.0, -1.7, -0.5])
def test_suggestion_exp_sweep_synthetic(centre):
    config = RangeTestConfig(min_lr=1e-5, max_lr=10.0, steps=60, mode="exp")
    lrs = sweep_lrs(config)
    x = np.log10(lrs)
    loss = synthetic_curve(x, centre)
    expected = true_steepest_index(x, centre)

    suggested, rule = suggest_max_lr(lrs, loss)

    index = int(np.argmin(np.abs(lrs - suggested)))
    assert abs(index - expected) <= 1, (suggested, lrs[expected])
    assert "steepest" in rule


def test_suggestion_linear_sweep_synthetic():
    config = RangeTestConfig(min_lr=1e-3, max_lr=1.0, steps=60, mode="linear")
    lrs = sweep_lrs(config)
    x = np.log10(lrs)
    centre = math.log10(0.3)
    loss = synthetic_curve(x, centre)
    expected = true_steepest_index(x, centre)

    suggested, _ = suggest_max_lr(lrs, loss)

    index = int(np.argmin(np.abs(lrs - suggested)))
    assert abs(index - expected) <= 1, (suggested, lrs[expected])


def test_suggestion_noisy_curve_smoothed():
    config = RangeTestConfig(steps=80)
    lrs = sweep_lrs(config)
    x = np.log10(lrs)
    clean = synthetic_curve(x, -2.0)
    noisy = clean + np.random.default_rng(0).normal(0, 0.02, size=x.size)
    expected = true_steepest_index(x, -2.0)

    suggested, _ = suggest_max_lr(lrs, noisy)

    step = x[1] - x[0]
    assert abs(math.log10(suggested) - x[expected]) <= 2 * step


def test_suggestion_never_falling_curve():
    lrs = np.geomspace(1e-4, 1, 30)
    suggested, rule = suggest_max_lr(lrs, np.linspace(1, 2, 30))

    assert suggested == lrs[3]
    assert "never fell" in rule


# -- range test: divergence and state -------------------------------------------------------

class ToyBatches:
    def draw(self, count, generator):
        return [torch.randn(8, 3, generator=generator) for _ in range(count)]


def toy_setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train_step(batch):
        optimizer.zero_grad()
        loss = model(batch).pow(2).mean()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return model, optimizer, train_step


def test_range_test_nonfinite_stops_sweep():
    model, optimizer, train_step = toy_setup()
    set_lr = lr_setter(optimizer)

    def step_with_blowup(batch):
        loss = train_step(batch)
        return torch.tensor(float("nan")) if optimizer.param_groups[0]["lr"] > 1e-2 else loss

    config = RangeTestConfig(min_lr=1e-5, max_lr=10.0, steps=40)
    result = run_range_test(model, optimizer, step_with_blowup, ToyBatches(), config,
                            torch.Generator().manual_seed(0), set_lr)

    assert max(result.lrs) <= 1e-2
    assert all(math.isfinite(v) for v in result.losses + result.smoothed)
    assert "non-finite" in result.stop_reason
    assert result.train_steps == len(result.lrs) + 1
    assert len(result.rows()) == len(result.lrs) < config.steps


def test_range_test_diverging_loss_stops_sweep():
    model, optimizer, train_step = toy_setup()

    def step_growing(batch):
        train_step(batch)
        return torch.tensor(1.0 if optimizer.param_groups[0]["lr"] < 0.1 else 50.0)

    config = RangeTestConfig(min_lr=1e-5, max_lr=10.0, steps=40, diverge_factor=4.0)
    result = run_range_test(model, optimizer, step_growing, ToyBatches(), config,
                            torch.Generator().manual_seed(0), lr_setter(optimizer))

    assert "x best" in result.stop_reason
    assert result.lrs[-1] < 1.0
    assert len(result.lrs) < config.steps


def training_state(model, optimizer) -> dict:
    return {
        "model": {name: tensor.clone() for name, tensor in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state()[1].copy(),
        "python_rng": random.getstate(),
        "training": model.training,
    }


def test_range_test_restores_state_exactly():
    cfg = compose_config(["opt=momentum", "schedule=baseline", *TINY])
    device = prepare(cfg)
    parts = build_components(cfg, device)
    model, optimizer = parts.task.model, parts.optimizer
    batches = parts.batch_source()
    for batch in batches.draw(3, torch.Generator().manual_seed(1)):  # creates momentum buffers
        parts.train_step(batch)
    model.eval()
    before = training_state(model, optimizer)

    config = RangeTestConfig(min_lr=1e-4, max_lr=100.0, steps=25)  # runs into divergence
    run_range_test(model, optimizer, parts.train_step, batches, config, torch.Generator().manual_seed(2),
                   lr_setter(optimizer))
    after = training_state(model, optimizer)

    for name, tensor in before["model"].items():
        assert torch.equal(tensor, after["model"][name]), name
    assert before["optimizer"]["param_groups"] == after["optimizer"]["param_groups"]
    for index, state in before["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], after["optimizer"]["state"][index]["momentum_buffer"])
    assert torch.equal(before["torch_rng"], after["torch_rng"])
    assert np.array_equal(before["numpy_rng"], after["numpy_rng"])
    assert before["python_rng"] == after["python_rng"]
    assert after["training"] is False


# -- fit study -------------------------------------------------------------------------------

def test_fit_point_recovers_quadratic():
    a, minimum, floor = 2.0, 0.3, 0.5
    options = AutoLRConfig()

    point = fit_point(lambda lr: a * (lr - minimum) ** 2 + floor, 0.25, options, math.inf,
                      grid_span=16.0, grid_points=9, tolerance=0.5)

    assert point.fit.a == pytest.approx(a, rel=1e-6)
    assert point.fit.b == pytest.approx(-2 * a * minimum, rel=1e-6)
    assert point.fit.c == pytest.approx(a * minimum**2 + floor, rel=1e-6)
    assert point.minimum_lr == pytest.approx(minimum, rel=1e-6)
    assert point.minimum_inside is True
    assert point.true_at_minimum == pytest.approx(floor, abs=1e-9)
    assert point.test_error == pytest.approx(0.0, abs=1e-6)
    grid = [lr for lr, _ in point.grid_samples]
    assert point.agreement_lrs == pytest.approx((min(grid), max(grid)))
    roles = [role for _, _, role in point.rows()]
    assert roles.count("fit") == options.n_fit
    assert roles.count("test") == options.n_test + 9
    assert roles.count("true_at_minimum") == 1


def test_fit_point_flags_minimum_outside():
    point = fit_point(lambda lr: (lr - 5.0) ** 2, 0.05, AutoLRConfig(), math.inf,
                      grid_span=8.0, grid_points=7, tolerance=0.5)

    low, high = point.fitted_range
    assert point.minimum_lr == pytest.approx(5.0, rel=1e-6)
    assert not low <= point.minimum_lr <= high
    assert point.minimum_inside is False
    assert point.true_at_minimum == pytest.approx(0.0, abs=1e-9)


def test_fit_point_breakdown_and_divergence():
    def loss(lr):  # quadratic up to 0.5, flat beyond 0.5, diverged beyond 2
        if lr > 2.0:
            return float("nan")
        return (min(lr, 0.5) - 0.2) ** 2

    point = fit_point(loss, 0.1, AutoLRConfig(), math.inf, grid_span=64.0, grid_points=25, tolerance=0.5)

    low, high = point.agreement_lrs
    assert high < 2.0
    assert high >= point.fitted_range[1]
    assert any(not math.isfinite(loss_value) for _, loss_value, _ in point.rows())
    assert point.inside_max_error == pytest.approx(0.0, abs=1e-6)


def test_fit_point_caps_candidates():
    point = fit_point(lambda lr: (lr - 0.1) ** 2, 0.4, AutoLRConfig(), 0.2, grid_span=4.0, grid_points=5,
                      tolerance=0.5)

    assert max(lr for lr, _ in point.fit_samples) <= 0.2


# -- noise study -----------------------------------------------------------------------------

def test_noise_std_falls_as_inverse_sqrt():
    cfg = compose_config(["schedule=baseline", *TINY])
    device = prepare(cfg)
    parts = build_components(cfg, device)
    source = parts.batch_source()
    generator = torch.Generator().manual_seed(0)
    sizes = superbatch_sizes(16)

    with FrozenState(parts.task.model, parts.optimizer, parts.train_step, parts.task.loss, True) as frozen:
        losses = np.array([[float(v) for v in frozen.batch_losses(source.draw(16, generator))]
                           for _ in range(60)])
    rows = noise_table(losses, sizes)

    stds = np.array([row["std_loss"] for row in rows])
    slope = np.polyfit(np.log(sizes), np.log(stds), 1)[0]
    assert -0.75 < slope < -0.3, (slope, stds)
    assert stds[-1] < stds[0] / 2
    assert [row["superbatch"] for row in rows] == [1, 2, 4, 8, 16]
    assert frozen.forward_batches == 60 * 16


def test_noise_pick_superbatch():
    rows = [{"superbatch": s, "std_loss": 0.1 / math.sqrt(s)} for s in (1, 2, 4, 8)]

    assert pick_superbatch(rows, 0.06) == 4
    assert pick_superbatch(rows, 0.01) is None
    assert superbatch_sizes(12) == [1, 2, 4, 8, 12]


def test_superbatch_from_missing_folder(tmp_path):
    with pytest.raises(ConfigError, match="run.json"):
        superbatch_from_study(tmp_path)


# -- commands end to end on digits -----------------------------------------------------------

def test_range_test_command(repro, results_dir):
    status, output, _ = repro("range-test", "schedule=baseline", "study.range_test.steps=20", *TINY)

    assert status == 0
    folder = only_folder(results_dir, "range_test-sgd")
    columns, rows = read_rows(folder / "range_test.csv")
    assert tuple(columns) == RANGE_TEST_COLUMNS
    assert 5 <= len(rows) <= 20
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "completed"
    assert record["command"].startswith("repro range-test")
    assert record["range_test"]["suggested_max_lr"] > 0
    assert record["cost"]["study_steps"] >= len(rows)
    assert (folder / "config.yaml").is_file()
    assert "suggested max LR" in output
    assert "cost:" in output


def test_fit_study_command(repro, results_dir):
    status, _, _ = repro("fit-study", "schedule=baseline", "study.fit.epochs=[0,0.5]", "study.fit.grid_points=5",
                         *TINY)

    assert status == 0
    folder = only_folder(results_dir, "fit_study-sgd")
    columns, rows = read_rows(folder / "fit_study.csv")
    assert tuple(columns) == FIT_STUDY_COLUMNS
    assert {row["fit_id"] for row in rows} == {"0", "1"}
    assert sum(row["role"] == "fit" for row in rows) == 2 * 4
    assert sum(row["role"] == "test" for row in rows) == 2 * (1 + 5)
    record = json.loads((folder / "run.json").read_text())
    fits = record["fit_study"]["fits"]
    assert [fit["step"] for fit in fits] == [0, 11]
    assert record["cost"]["training_steps"] == 11
    assert record["cost"]["study_steps"] > 0
    assert record["cost"]["forward_batches"] > 0


def test_noise_study_command_feeds_autolr(repro, results_dir):
    status, output, _ = repro("noise-study", "schedule=baseline", "study.noise.epoch=0.5",
                              "study.noise.max_superbatch=8", "study.noise.draws=4", *TINY)

    assert status == 0
    folder = only_folder(results_dir, "noise_study-sgd")
    columns, rows = read_rows(folder / "noise_study.csv")
    assert tuple(columns) == NOISE_STUDY_COLUMNS
    assert [int(row["superbatch"]) for row in rows] == [1, 2, 4, 8]
    study = json.loads((folder / "run.json").read_text())["noise_study"]
    assert study["gap"] > 0
    assert study["threshold"] == pytest.approx(0.25 * study["gap"])
    if study["chosen_superbatch"] is None:
        with pytest.raises(ConfigError, match="no size"):
            superbatch_from_study(folder)
    else:
        chosen = superbatch_from_study(folder)
        assert chosen == study["chosen_superbatch"]
        assert AutoLRConfig(superbatch=chosen).superbatch == chosen
        assert f"schedule.superbatch={chosen}" in output


def test_noise_study_invalid_option(repro):
    status, _, errors = repro("noise-study", "study.noise.draws=1", *TINY)

    assert status == 2
    assert "study.noise.draws=1" in errors


def test_study_unknown_choice(repro):
    status, _, errors = repro("fit-study", "study=nonexistent", *TINY)

    assert status == 2
    assert "unknown study 'nonexistent'" in errors


# -- plateau experiment configs --------------------------------------------------------------

EXPERIMENTS = sorted(path.stem for path in (ROOT / "conf" / "experiment").glob("plateau_*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_plateau_experiment_composes(experiment):
    cfg = compose_config([f"experiment={experiment}"])

    assert cfg.opt.name == "sgd"
    assert cfg.opt.lr == 0.1
    if experiment.endswith("_constant"):
        assert cfg.schedule.name == "constant"
        assert list(cfg.schedule.milestones) == []
    else:
        assert cfg.schedule.name == "baseline"
        assert list(cfg.schedule.milestones) == [cfg.plateau.drop_epoch]
        assert cfg.schedule.gamma == 0.1


def test_plateau_cifar10_drop_epoch_50():
    cfg = compose_config(["experiment=plateau_cifar10_drop"])

    assert cfg.dataset.name == "cifar10"
    assert cfg.model.name == "resnet18_cifar"
    assert list(cfg.schedule.milestones) == [50]


def self_before_experiment() -> bool:
    defaults = OmegaConf.load(ROOT / "conf" / "config.yaml").defaults
    names = [entry if isinstance(entry, str) else next(iter(entry)) for entry in defaults]
    return names.index("_self_") < names.index("optional experiment")


@pytest.mark.skipif(not self_before_experiment(),
                    reason="conf/config.yaml lists _self_ after the experiment, so its suffix: null wins")
def test_plateau_drop_sets_suffix():
    cfg = compose_config(["experiment=plateau_cifar10_drop", "plateau.drop_epoch=60"])

    assert cfg.suffix == "drop60"
    assert list(cfg.schedule.milestones) == [60]


def autolr_schedule_reads_superbatch_from() -> bool:
    return "superbatch_from" in OmegaConf.load(ROOT / "conf" / "schedule" / "autolr.yaml")


@pytest.mark.skipif(not autolr_schedule_reads_superbatch_from(),
                    reason="conf/schedule/autolr.yaml has no superbatch_from key")
def test_autolr_superbatch_from_noise_study(repro, results_dir):
    from repro.schedules import autolr_config

    # A gap far above any standard deviation makes the study choose a superbatch of 1, not the default 4.
    status, _, _ = repro("noise-study", "schedule=baseline", "study.noise.epoch=0", "study.noise.max_superbatch=4",
                         "study.noise.draws=3", "study.noise.gap=100", *TINY)
    folder = only_folder(results_dir, "noise_study-sgd")
    cfg = compose_config(["schedule=autolr", f"schedule.superbatch_from={folder}"])

    assert status == 0
    assert autolr_config(cfg.schedule).superbatch == 1
