"""Benchmark of the training loop and the AutoLR tuner on mnist_5k / ResNet-18 (CPU or GPU).

Prints, measured in this one run on the same model and data:
  1. the repro training loop's throughput as a ratio to a bare hand-written PyTorch loop;
  2. AutoLR's extra compute as a fraction of training compute at default settings, from a real
     range test and real searches timed here, and the formula that gives it at any scale;
  3. the snapshot's memory relative to the model plus optimizer state, and its growth.

    python bench/bench_loop.py [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from repro.autolr import AutoLR, training_state_nbytes
from repro.components import build_components, prepare
from repro.results.csvlog import CsvLog
from repro.results.schema import STEP_COLUMNS, epoch_columns
from repro.schedules import StepDecay, autolr_config
from repro.train.loop import LoopState, Trainer, epoch_generator

ROOT = Path(__file__).resolve().parents[1]


def compose_config(*overrides: str):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return cfg


def bare_loop(parts, steps: int) -> float:
    """Seconds for `steps` plain SGD steps over the same batches, then the same evaluation."""
    model, optimizer = parts.task.model, parts.optimizer
    loader = parts.task.train_loader(parts.batch_size, epoch_generator(0, 0))
    model.train()
    started = time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        if step == steps:
            break
        images, labels = images.to(parts.device), labels.to(parts.device)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    parts.task.evaluate(model)
    return time.perf_counter() - started


def repro_loop(parts, cfg, steps: int, folder: Path) -> float:
    """Seconds for one epoch of `steps` steps through repro's Trainer, CSV logging included."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("epochs.csv", "steps.csv"):
        (folder / name).unlink(missing_ok=True)
    schedule = StepDecay(parts.optimizer, cfg.opt.lr, [], 1.0, parts.steps_per_epoch)
    trainer_cfg = OmegaConf.merge(cfg.trainer, {"epochs": 1, "progress": False, "checkpoint_every": 10**6})
    trainer = Trainer(parts.task, parts.optimizer, schedule, parts.train_step,
                      CsvLog(folder / "epochs.csv", epoch_columns(parts.task.metric_columns)),
                      CsvLog(folder / "steps.csv", STEP_COLUMNS), trainer_cfg, 0, folder)
    trainer.steps_per_epoch = steps
    trainer.save = lambda state: None  # the bare loop writes no checkpoint either
    started = time.perf_counter()
    trainer.run(LoopState())
    return time.perf_counter() - started


def measure_throughput(cfg, steps: int, repeats: int) -> None:
    device = prepare(cfg)
    parts = build_components(cfg, device)
    bare_loop(parts, 5)  # warm-up: allocator, kernels
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):  # alternate, so load changes hit both loops alike
            bare.append(bare_loop(parts, steps))
            ours.append(repro_loop(parts, cfg, steps, Path(tmp)))
    images = steps * parts.batch_size
    bare_rate, our_rate = images / statistics.median(bare), images / statistics.median(ours)
    print(f"throughput ({steps} steps x {repeats}, median): repro loop {our_rate:.1f} img/s, "
          f"bare PyTorch loop {bare_rate:.1f} img/s, ratio {our_rate / bare_rate:.3f} (target >= 0.95)")


def measure_autolr(cfg, searches: int) -> None:
    device = prepare(cfg)
    parts = build_components(cfg, device)
    config = autolr_config(compose_config("dataset=mnist_5k", "schedule=autolr").schedule)
    tuner = AutoLR(parts.task.model, parts.optimizer, parts.task.loss, parts.batch_source(), parts.total_steps,
                   config, train_step=parts.train_step, seed=0)

    # Time plain training steps on the same model for the denominator.
    source = parts.batch_source()
    batches = source.draw(12, torch.Generator().manual_seed(1))
    parts.task.model.train()
    parts.train_step(batches[0])
    started = time.perf_counter()
    for batch in batches[1:]:
        parts.train_step(batch)
    step_seconds = (time.perf_counter() - started) / (len(batches) - 1)

    tuner.start()
    range_seconds = tuner.extra.seconds
    state_bytes = training_state_nbytes(parts.task.model, parts.optimizer)
    process = psutil.Process()
    rss = []
    search_seconds = []
    for index in range(searches):
        result = tuner.search(step=index)
        search_seconds.append(result.seconds)
        rss.append(process.memory_info().rss)
    search_mean = statistics.mean(search_seconds)

    total = parts.total_steps
    explore = int(config.explore_fraction * total)
    count = max(0, math.ceil((total - explore) / config.interval))
    fraction = (range_seconds + count * search_mean) / (total * step_seconds)
    evals = config.n_fit + config.n_test + int(config.verify)
    print(f"autolr extra compute at mnist_5k defaults ({total} steps, {count} searches): range test "
          f"{config.range_test.steps} steps {range_seconds:.2f} s, search {search_mean:.2f} s each, training "
          f"{step_seconds * 1e3:.1f} ms/step -> {100 * fraction:.1f}% of training compute (target < 15%)")
    print(f"  formula: extra / training = R/T + (1 - e) * E * (k + s * f) / I, with R range-test steps "
          f"({config.range_test.steps}), T total steps, e explore fraction ({config.explore_fraction}), "
          f"E = n_fit + n_test + verify ({evals}) evaluations per search, k trial steps ({config.trial_steps}), "
          f"s superbatch ({config.superbatch}), f forward/step cost ratio, I interval ({config.interval})")
    forward_ratio = max(0.0, (search_mean / evals / step_seconds - config.trial_steps) / config.superbatch)
    per_search = evals * (config.trial_steps + config.superbatch * forward_ratio)
    for name, steps in (("CIFAR-10, 200 epochs x 390 steps", 200 * 390), ("ImageNet, 90 epochs x 5005 steps", 90 * 5005)):
        paper = config.range_test.steps / steps + (1 - config.explore_fraction) * per_search / config.interval
        print(f"  at paper scale ({name}), with f = {forward_ratio:.2f} measured here: {100 * paper:.1f}%")

    snapshot_bytes = tuner._snapshot.nbytes()
    growth = (rss[-1] - rss[0]) / 2**20
    print(f"snapshot memory: {snapshot_bytes / 2**20:.1f} MiB = {snapshot_bytes / state_bytes:.2f} x model + optimizer "
          f"state (target <= 1x); process RSS change from search 1 to {searches}: {growth:+.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per timed loop (default 60)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each loop (default 3)")
    parser.add_argument("--searches", type=int, default=4, help="AutoLR searches timed (default 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    args = parser.parse_args()

    cfg = compose_config("dataset=mnist_5k", "opt=momentum", "schedule=baseline", f"trainer.device={args.device}")
    print(f"mnist_5k / ResNet-18, batch {cfg.trainer.batch_size}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, device {args.device}")
    measure_throughput(cfg, args.steps, args.repeats)
    measure_autolr(cfg, args.searches)


if __name__ == "__main__":
    main()
