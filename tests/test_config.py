"""Every config composes, and each paper setting resolves to its recipe without overrides."""

from __future__ import annotations

import itertools

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT
from repro.validate import validate_config

CONF = ROOT / "conf"


def choices(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="module")
def composer():
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(CONF), version_base="1.3"):
        def compose_resolved(*overrides: str):
            cfg = compose("config", overrides=list(overrides))
            OmegaConf.resolve(cfg)
            return cfg

        yield compose_resolved


def test_every_dataset_and_schedule_composes(composer):
    for dataset, schedule in itertools.product(choices("dataset"), choices("schedule")):
        recipe = compose("config", overrides=[f"dataset={dataset}"]).dataset.recipe  # unresolved
        opt = next(name for name in choices("opt") if name in recipe)
        cfg = composer(f"dataset={dataset}", f"opt={opt}", f"schedule={schedule}")
        validate_config(cfg)
        assert cfg.dataset.name == dataset
        assert cfg.schedule.name == schedule


def test_every_optimizer_composes(composer):
    for opt in choices("opt"):
        cfg = composer(f"opt={opt}", "schedule=baseline")
        validate_config(cfg)
        assert cfg.opt.name == opt


def test_every_model_composes(composer):
    for model in choices("model"):
        cfg = composer(f"model={model}")
        assert cfg.model.name == model


def test_every_experiment_composes(composer):
    for experiment in choices("experiment"):
        cfg = composer(f"experiment={experiment}")
        validate_config(cfg)


def test_default_is_digits_under_autolr(composer):
    cfg = composer()
    assert cfg.dataset.name == "digits"
    assert cfg.schedule.name == "autolr"
    assert cfg.model.name == "small_cnn"


def test_cifar10_sgd_is_paper_baseline(composer):
    cfg = composer("dataset=cifar10", "opt=sgd")
    assert cfg.model.name == "resnet18_cifar"
    assert cfg.schedule.name == "baseline"
    assert cfg.trainer.epochs == 200
    assert cfg.trainer.batch_size == 128
    assert cfg.opt.lr == 0.1
    assert cfg.opt.weight_decay == 5e-4
    assert list(cfg.schedule.milestones) == [100, 150]


def test_autolr_switches_same_setting(composer):
    cfg = composer("dataset=cifar10", "opt=sgd", "schedule=autolr")
    assert cfg.schedule.kind == "autolr"
    assert cfg.model.name == "resnet18_cifar"
    assert cfg.trainer.epochs == 200


@pytest.mark.parametrize("dataset, model, epochs", [
    ("imagenet", "resnet50", 90), ("mnist", "resnet18_mnist", 30), ("fashion_mnist", "resnet18_mnist", 30),
    ("mnist_5k", "resnet18_mnist", 12),
])
def test_dataset_selects_paper_model(composer, dataset, model, epochs):
    cfg = composer(f"dataset={dataset}")
    assert cfg.model.name == model
    assert cfg.trainer.epochs == epochs


def test_command_line_model_wins(composer):
    cfg = composer("dataset=cifar10", "model=resnet50")
    assert cfg.model.name == "resnet50"


def test_imagenet_reports_top5(composer):
    assert composer("dataset=imagenet").dataset.top5 is True
