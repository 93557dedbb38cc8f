"""Peer schedules, LR-free optimizers and `repro compare` on the embedded digits setting."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT, read_run, run_folders
from repro.autolr import AutoLR
from repro.components import build_components, prepare
from repro.errors import ConfigError
from repro.peers.lr_free import effective_lr
from repro.peers.schedules import PlateauSchedule, check_plateau_mode, knee_factor
from repro.schedules import build_schedule
from repro.train.loop import Trainer

TINY = ("trainer.epochs=1", "dataset.max_train_examples=128", "dataset.max_test_examples=64", "trainer.log_every=1")

METHODS = [
    ("sgd", "plateau"), ("sgd", "cosine"), ("sgd", "knee"), ("sgd", "onecycle"),
    ("schedulefree_sgd", "constant"), ("schedulefree_adamw", "constant"), ("prodigy", "constant"),
    ("dadapt_sgd", "constant"), ("dadapt_adam", "constant"), ("prodigy", "cosine"),
]


def compose_config(*overrides: str):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(("opt", "schedule"), METHODS)
def test_method_runs_one_epoch(repro, results_dir, opt, schedule):
    extra = ("schedule.range_test.steps=10",) if schedule == "onecycle" else ()
    status, _, err = repro("run", *TINY, f"opt={opt}", f"schedule={schedule}", *extra)
    assert status == 0, err
    (folder,) = run_folders(results_dir)
    record, epochs = read_run(folder)
    assert record["status"] == "completed"
    steps = pd.read_csv(folder / "steps.csv")
    assert len(steps) == 2
    last_lr = steps["lr"].iloc[-1]
    assert math.isfinite(last_lr)
    assert last_lr > 0
    assert epochs["lr"].iloc[-1] == pytest.approx(last_lr)


def test_onecycle_counts_range_test_as_extra(repro, results_dir):
    status, _, err = repro("run", *TINY, "schedule=onecycle", "schedule.range_test.steps=10")
    assert status == 0, err
    _, epochs = read_run(run_folders(results_dir)[0])
    assert epochs["autolr_extra_steps"].iloc[-1] == 10


def test_plateau_rejects_contradicting_mode(repro):
    status, _, err = repro("run", *TINY, "schedule=plateau", "schedule.mode=max")
    assert status == 2
    assert "schedule.mode=max contradicts" in err
    assert "use schedule.mode=min" in err


@pytest.mark.parametrize(("monitor", "mode"), [("test_acc", "min"), ("test_loss", "max"), ("valid_ppl", "max"),
                                               ("em", "min")])
def test_plateau_mode_check_table(monitor, mode):
    with pytest.raises(ConfigError, match="contradicts"):
        check_plateau_mode(monitor, mode)


def test_plateau_mode_follows_metric():
    assert check_plateau_mode(None, None) == "min"
    assert check_plateau_mode("test_acc", None) == "max"
    assert check_plateau_mode("test_top5", "max") == "max"
    with pytest.raises(ConfigError, match="no known direction"):
        check_plateau_mode("score", None)
    assert check_plateau_mode("score", "max") == "max"


def test_plateau_reduces_after_patience():
    cfg = compose_config("schedule=plateau", "schedule.patience=1")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = PlateauSchedule(optimizer, cfg.schedule)
    for loss in (1.0, 1.0, 1.0):
        schedule.on_evaluate({"test_loss": loss, "test_acc": 50.0})
    assert schedule.monitor == "test_loss"
    assert schedule.apply(0) == pytest.approx(0.01)


def test_plateau_rejects_unknown_monitor():
    cfg = compose_config("schedule=plateau", "schedule.monitor=valid_loss")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = PlateauSchedule(optimizer, cfg.schedule)
    with pytest.raises(ConfigError, match="not an evaluation metric"):
        schedule.on_evaluate({"test_loss": 1.0})


def test_knee_explores_then_decays_to_zero():
    factors = [knee_factor(step, 10, 4, 2) for step in range(10)]
    assert factors[:4] == [0.5, 1.0, 1.0, 1.0]
    assert factors[4:] == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])


def test_peer_schedule_lr_curves():
    cfg = compose_config("schedule=cosine", "schedule.warmup_fraction=0.2")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = build_schedule(cfg.schedule, optimizer, 1.0, 5, 10, make_tuner=None)
    lrs = [schedule.apply(step) for step in range(10)]
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(later <= earlier for earlier, later in zip(lrs[1:], lrs[2:]))


def test_cosine_resumes_at_same_lr():
    cfg = compose_config("schedule=cosine")
    make = lambda: torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)  # noqa: E731
    first_optimizer = make()
    first = build_schedule(cfg.schedule, first_optimizer, 1.0, 5, 20, make_tuner=None)
    expected = [first.apply(step) for step in range(20)]

    optimizer = make()
    schedule = build_schedule(cfg.schedule, optimizer, 1.0, 5, 20, make_tuner=None)
    for step in range(8):
        schedule.apply(step)
    saved_schedule, saved_optimizer = schedule.state_dict(), optimizer.state_dict()
    resumed_optimizer = make()
    resumed = build_schedule(cfg.schedule, resumed_optimizer, 1.0, 5, 20, make_tuner=None)
    resumed_optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_schedule)
    assert [resumed.apply(step) for step in range(8, 20)] == pytest.approx(expected[8:])


def test_onecycle_without_tuner_needs_max_lr():
    cfg = compose_config("schedule=onecycle")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="schedule.max_lr"):
        build_schedule(cfg.schedule, optimizer, 0.1, 5, 10, make_tuner=None)


def test_onecycle_cycle_momentum_needs_momentum():
    cfg = compose_config("schedule=onecycle", "schedule.max_lr=1.0", "schedule.cycle_momentum=true")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ConfigError, match="cycle_momentum"):
        build_schedule(cfg.schedule, optimizer, 0.1, 5, 10, make_tuner=None)


def test_invalid_peer_option_rejected(repro):
    status, _, err = repro("run", *TINY, "schedule=knee", "schedule.explore_fraction=1.5")
    assert status == 2
    assert "schedule.explore_fraction=1.5" in err


def _components(*overrides: str):
    cfg = compose_config(*TINY, *overrides)
    device = prepare(cfg)
    parts = build_components(cfg, device)

    def make_tuner(config):
        return AutoLR(parts.task.model, parts.optimizer, parts.task.loss, parts.batch_source(), parts.total_steps,
                      config, train_step=parts.train_step, seed=cfg.seed)

    schedule = build_schedule(cfg.schedule, parts.optimizer, cfg.opt.lr, parts.steps_per_epoch, parts.total_steps,
                              make_tuner)
    return cfg, parts, schedule


def test_schedule_free_switches_modes_for_evaluation(tmp_path):
    cfg, parts, schedule = _components("opt=schedulefree_sgd", "schedule=constant")
    optimizer, model = parts.optimizer, parts.task.model
    assert optimizer.param_groups[0]["train_mode"]  # step() raises in eval mode

    batch = parts.batch_source().draw(1, torch.Generator().manual_seed(0))[0]
    for step in range(3):
        schedule.apply(step)
        parts.train_step(batch)
    norm = next(module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d))
    train_weights = [p.detach().clone() for p in model.parameters()]
    train_stats = norm.running_mean.clone()

    seen = {}

    def evaluate(evaluated):
        seen["train_mode"] = optimizer.param_groups[0]["train_mode"]
        seen["weights"] = [p.detach().clone() for p in evaluated.parameters()]
        seen["stats"] = norm.running_mean.clone()
        return {"test_loss": 1.0, "test_acc": 10.0}

    parts.task.evaluate = evaluate
    trainer = Trainer(parts.task, optimizer, schedule, parts.train_step, None, None, cfg.trainer, cfg.seed, tmp_path)
    trainer._evaluate(model)

    assert seen["train_mode"] is False
    assert any(not torch.equal(a, b) for a, b in zip(seen["weights"], train_weights))  # averaged weights x
    assert not torch.equal(seen["stats"], train_stats)  # statistics recomputed at x
    assert optimizer.param_groups[0]["train_mode"] is True
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), train_weights))
    assert torch.equal(norm.running_mean, train_stats)


def test_prodigy_logs_d_times_lr():
    _, parts, schedule = _components("opt=prodigy", "schedule=constant")
    batch = parts.batch_source().draw(1, torch.Generator().manual_seed(0))[0]
    first = schedule.apply(0)
    assert first == pytest.approx(1e-6)  # d0 * lr
    parts.train_step(batch)
    group = parts.optimizer.param_groups[0]
    assert schedule.apply(1) == pytest.approx(group["d"] * group["lr"])
    assert effective_lr(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)) is None


def test_dadapt_sgd_lr_unknown_before_first_step():
    _, parts, schedule = _components("opt=dadapt_sgd", "schedule=constant")
    assert math.isnan(schedule.apply(0))
    parts.train_step(parts.batch_source().draw(1, torch.Generator().manual_seed(0))[0])
    assert schedule.apply(1) > 0


def test_compare_writes_csv_and_table(repro, results_dir):
    methods = "baseline-sgd,cosine-sgd,constant-prodigy"
    status, out, err = repro("compare", "--opt", "sgd", "--methods", methods, "--seeds", "0", *TINY)
    assert status == 0, err
    folder = results_dir / "digits-small_cnn" / "comparison"
    table = pd.read_csv(folder / "comparison.csv")
    assert list(table["method"]) == methods.split(",")
    assert (table["completed"] == 1).all()
    assert (table["diverged"] == 0).all()
    assert table.loc[0, "reached_target"] == 1  # the baseline reaches its own final metric
    markdown = (folder / "comparison.md").read_text()
    assert "| constant-prodigy | 1/1 |" in markdown
    assert "torch-lr-finder" in markdown
    peers = pd.read_csv(folder / "range_test_peer.csv")
    assert list(peers["tool"]) == ["repro", "torch-lr-finder"]
    assert (folder / "comparison.png").is_file()
    seeds = pd.read_csv(folder / "comparison_seeds.csv")
    assert seeds.loc[0, "folder"] == "baseline-sgd/seed0"  # relative, so the CSV does not name this machine

    # A second call reads the runs instead of training them again.
    status, _, err = repro("compare", "--opt", "sgd", "--methods", methods, "--seeds", "0", "--read-only",
                           "--no-range-test", *TINY)
    assert status == 0, err
    assert len(run_folders(results_dir)) == 3


def test_compare_rejects_own_overrides(repro):
    status, _, err = repro("compare", "--methods", "baseline-sgd", "--opt", "sgd", "seed=3")
    assert status == 2
    assert "--seeds" in err
