"""The AutoLR tuner as a library: analytic optimum, noise, fallbacks and exact snapshots."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from repro.autolr import (AutoLR, AutoLRConfig, DatasetBatchSource, TrainingSnapshot, candidate_lrs, choose_lr,
                          fit_quadratic)


class Quadratic(nn.Module):
    """f(w) = h * w^2 / 2 per coordinate; one SGD step at LR 1/h lands on the minimum."""

    def __init__(self, curvature: float, start: float = 1.0):
        super().__init__()
        self.curvature = curvature
        self.w = nn.Parameter(torch.full((4,), start))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.curvature * (self.w**2).sum() + noise.mean()


class NoiseSource:
    """Batches are scalar noise offsets added to the loss; `scale` 0 gives the exact function."""

    def __init__(self, scale: float):
        self.scale = scale

    def draw(self, count, generator):
        return [torch.randn(8, generator=generator) * self.scale for _ in range(count)]


def quadratic_loss(model, batch):
    return model(batch)


def tune_once(curvature: float, noise: float, start_lr: float) -> float:
    model = Quadratic(curvature)
    optimizer = torch.optim.SGD(model.parameters(), lr=start_lr)
    config = AutoLRConfig(max_lr=10.0, explore_fraction=0.0, trial_steps=1, superbatch=4, n_fit=5, n_test=2,
                          spacing=1.6, verify=True)
    tuner = AutoLR(model, optimizer, quadratic_loss, NoiseSource(noise), total_steps=10, config=config)
    tuner.lr = start_lr
    tuner.start()
    return tuner.search(step=0).chosen_lr


@pytest.mark.parametrize("curvature", [0.5, 2.0, 8.0])
def test_finds_one_over_curvature(curvature):
    chosen = tune_once(curvature, noise=0.0, start_lr=0.7 / curvature)
    assert chosen == pytest.approx(1 / curvature, rel=0.10)


def test_finds_optimum_under_noise():
    # The same noise draw is added for every candidate (common random numbers), so it cancels.
    chosen = tune_once(2.0, noise=0.05, start_lr=0.35)
    assert chosen == pytest.approx(0.5, rel=0.10)


def test_restores_parameters_after_search():
    model = Quadratic(2.0, start=0.3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tuner = AutoLR(model, optimizer, quadratic_loss, NoiseSource(0.0), 10,
                   AutoLRConfig(max_lr=1.0, explore_fraction=0.0))
    tuner.start()
    before = model.w.detach().clone()
    tuner.search(0)
    assert torch.equal(model.w.detach(), before)


def test_nan_candidate_is_discarded():
    samples = [(0.1, 1.0, "fit"), (0.2, 0.8, "fit"), (0.4, 0.7, "fit"), (0.8, float("nan"), "fit"),
               (0.3, 0.72, "test")]
    decision, fit = choose_lr(samples, 0.4, max_lr=1.0, min_lr=1e-6, trust_factor=2.0, max_test_error=0.5)
    assert fit is not None
    assert math.isfinite(decision.lr)
    assert decision.decision in ("fit", "fit_clamped")


def test_diverging_candidate_leaves_no_trace():
    model = Quadratic(2.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # LRs up to 1e3 make the iterate explode; those candidates must come back NaN and be dropped.
    config = AutoLRConfig(max_lr=1e3, explore_fraction=0.0, trial_steps=40, superbatch=1, n_fit=4, n_test=0,
                          spacing=30.0, verify=False)
    tuner = AutoLR(model, optimizer, quadratic_loss, NoiseSource(0.0), 10, config)
    tuner.lr = 1e3
    tuner.start()
    before = model.w.detach().clone()
    result = tuner.search(0)
    losses = [sample.loss for sample in result.samples]
    assert any(math.isnan(loss) for loss in losses)
    assert math.isfinite(result.chosen_lr)
    assert torch.equal(model.w.detach(), before)


def test_concave_fit_falls_back_to_best_sample():
    samples = [(0.1, 1.0, "fit"), (0.2, 0.9, "fit"), (0.3, 0.7, "fit"), (0.4, 0.3, "fit")]
    decision, fit = choose_lr(samples, 0.2, max_lr=1.0, min_lr=1e-6, trust_factor=2.0, max_test_error=0.5)
    assert fit.a < 0
    assert decision.decision == "best_sample"
    assert decision.lr == 0.4
    assert "curvature" in decision.reason


def test_poor_fit_falls_back():
    samples = [(0.1, 1.0, "fit"), (0.2, 0.5, "fit"), (0.4, 0.6, "fit"), (0.3, 5.0, "test")]
    decision, _ = choose_lr(samples, 0.2, max_lr=1.0, min_lr=1e-6, trust_factor=2.0, max_test_error=0.5)
    assert decision.decision == "best_sample"
    assert "poor fit" in decision.reason


def test_too_few_finite_points_falls_back():
    samples = [(0.1, 1.0, "fit"), (0.2, float("inf"), "fit"), (0.4, float("nan"), "fit")]
    decision, fit = choose_lr(samples, 0.2, max_lr=1.0, min_lr=1e-6, trust_factor=2.0, max_test_error=0.5)
    assert fit is None
    assert decision.lr == 0.1


def test_far_minimum_is_clamped():
    # Loss (lr - 10)^2 sampled at 0.1..0.4: its minimum lies far outside the samples.
    samples = [(lr, (lr - 10.0) ** 2, "fit") for lr in (0.1, 0.2, 0.3, 0.4)]
    decision, fit = choose_lr(samples, 0.4, max_lr=5.0, min_lr=1e-6, trust_factor=2.0, max_test_error=0.5)
    assert fit.minimum == pytest.approx(10.0, rel=1e-6)
    assert decision.decision == "fit_clamped"
    assert decision.lr == pytest.approx(0.8)


def test_fit_recovers_coefficients_at_small_lrs():
    lrs = [1e-4, 2e-4, 4e-4, 8e-4]
    fit = fit_quadratic(lrs, [3e6 * lr**2 - 2e3 * lr + 1.5 for lr in lrs])
    assert fit.a == pytest.approx(3e6, rel=1e-6)
    assert fit.b == pytest.approx(-2e3, rel=1e-6)
    assert fit.c == pytest.approx(1.5, rel=1e-9)


def test_candidates_never_exceed_max_lr():
    for current in (0.01, 0.1, 1.0):
        fit, test = candidate_lrs(current, max_lr=1.0, n_fit=4, n_test=2, spacing=2.0)
        assert len(fit) == 4
        assert len(test) == 2
        assert max(fit + test) <= 1.0 + 1e-12
        assert len(set(fit)) == 4


def small_bn_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3))


def make_optimizer(name: str, params):
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.1)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(params, lr=1e-2)


def full_state(model, optimizer) -> dict:
    return {"model": {k: v.clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state().clone()}


def assert_same_state(first: dict, second: dict) -> None:
    for name, tensor in first["model"].items():
        assert torch.equal(tensor, second["model"][name]), name
    state_a, state_b = first["optimizer"]["state"], second["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    for index in state_a:
        for key, value in state_a[index].items():
            other = state_b[index][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other, (index, key)
    assert torch.equal(first["rng"], second["rng"])


@pytest.mark.parametrize("optimizer_name", ["sgd", "momentum", "adam"])
def test_snapshot_restore_is_bitwise_exact(optimizer_name):
    torch.manual_seed(0)
    model = small_bn_model()
    optimizer = make_optimizer(optimizer_name, model.parameters())
    data = torch.randn(16, 1, 6, 6), torch.randint(0, 3, (16,))

    def step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(data[0]), data[1]).backward()
        optimizer.step()

    step()  # optimizer state exists at capture time
    snapshot = TrainingSnapshot(model, optimizer)
    snapshot.capture()
    reference = full_state(model, optimizer)
    for _ in range(3):
        step()
        torch.rand(5)  # move the RNG too
    snapshot.restore()
    assert_same_state(reference, full_state(model, optimizer))

    # Continuing from the restored state matches continuing from the original one.
    step()
    after_restore = full_state(model, optimizer)
    snapshot.restore()
    step()
    assert_same_state(after_restore, full_state(model, optimizer))


def test_snapshot_drops_state_created_after_capture():
    model = small_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    snapshot = TrainingSnapshot(model, optimizer)
    snapshot.capture()  # no momentum buffers yet
    optimizer.zero_grad()
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    optimizer.step()
    assert len(optimizer.state) > 0
    snapshot.restore()
    assert all(not state for state in optimizer.state.values())


def test_snapshot_memory_does_not_grow():
    model = small_bn_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    optimizer.step()
    snapshot = TrainingSnapshot(model, optimizer)
    snapshot.capture()
    first = snapshot.nbytes()
    stored = {name: tensor.data_ptr() for name, tensor in snapshot._tensors.items()}
    for _ in range(3):
        snapshot.capture()
    assert snapshot.nbytes() == first
    assert {name: tensor.data_ptr() for name, tensor in snapshot._tensors.items()} == stored


def test_tuner_trains_a_real_model():
    torch.manual_seed(0)
    images, labels = torch.randn(256, 1, 6, 6), torch.randint(0, 3, (256,))
    model = small_bn_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = lambda m, batch: nn.functional.cross_entropy(m(batch[0]), batch[1])  # noqa: E731
    source = DatasetBatchSource(TensorDataset(images, labels), 32)
    config = AutoLRConfig(explore_fraction=0.2, interval=10,
                          range_test={"min_lr": 1e-4, "max_lr": 10.0, "steps": 20})
    searches = []
    tuner = AutoLR(model, optimizer, loss_fn, source, total_steps=40, config=config, on_search=searches.append)
    max_lr = tuner.start()
    assert 1e-4 <= max_lr <= 10.0
    for step in range(40):
        lr = tuner.update(step)
        assert lr <= max_lr
        (batch,) = source.draw(1, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss_fn(model, batch).backward()
        optimizer.step()
    assert [result.step for result in searches] == [8, 18, 28, 38]
    assert tuner.extra.train_steps > 0
