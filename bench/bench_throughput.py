"""Training throughput of a CPU-scale sequence setting, baseline vs AutoLR, in one process.

    .venv/bin/python bench/bench_throughput.py translation [--steps 20] [--searches 2] [HYDRA OVERRIDES...]
    .venv/bin/python bench/bench_throughput.py qa --steps 6 --searches 1 --range-test-steps 6

`translation` is Multi30k with the small Transformer. Its unit is target tokens without padding,
the tokens the per-token loss averages over. `qa` is squad_dev_split with MiniLM, counted in
training windows of up to `dataset.max_length` tokens. Both use Adam and the AutoLR range-test
bounds of the committed runs (scripts/translation_runs.sh, scripts/qa_runs.sh).

Both schedules start from the same initial weights and train `--steps` timed steps on the same
batches (after 2 untimed warm-up steps). AutoLR then runs its LR range test and `--searches`
searches, each timed. A bench this short contains only a few searches, so the AutoLR line for a
full run is computed from the measured parts. It adds one range test of the configured length
(timed per step, where `--range-test-steps` times a shorter sweep and scales it) and
(total steps - explore steps) / interval searches at the measured time each to the run's
training steps. Evaluation is left
out of both, because it costs the same.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from repro.autolr import AutoLR  # noqa: E402
from repro.components import build_components, prepare  # noqa: E402
from repro.schedules import AutoLRSchedule, autolr_config, build_schedule  # noqa: E402
from repro.train.loop import epoch_generator  # noqa: E402

# setting -> (config overrides, AutoLR overrides of the committed runs, unit name)
SETTINGS = {
    "translation": (["dataset=multi30k", "model=transformer_small", "opt=adam"],
                    ["schedule.range_test.max_lr=0.1"], "target tokens"),
    "qa": (["dataset=squad_dev_split", "opt=adam"],
           ["schedule.range_test.min_lr=1e-6", "schedule.range_test.max_lr=1e-2"], "windows"),
}


def compose_config(overrides: list[str]):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def batch_units(parts, batch) -> int:
    """Count the work in one batch: non-padding target tokens (translation) or windows (QA)."""
    if isinstance(batch, dict):
        return int(batch["input_ids"].shape[0])
    return int(batch[2].ne(parts.task.pad_id).sum())


def timed_steps(parts, schedule, batches: list, first_step: int) -> tuple[float, int]:
    """Train on `batches` under `schedule` and return (seconds, units of work)."""
    units = 0
    started = time.perf_counter()
    for offset, batch in enumerate(batches):
        schedule.apply(first_step + offset)
        batch = parts.task.to_device(batch)
        loss = parts.train_step(batch)
        units += batch_units(parts, batch)
    float(loss)  # wait for the last step on an asynchronous device
    return time.perf_counter() - started, units


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", choices=sorted(SETTINGS), help="which CPU-scale setting to time")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per schedule (default 20)")
    parser.add_argument("--searches", type=int, default=2, help="AutoLR searches to time (default 2)")
    parser.add_argument("--range-test-steps", type=int, default=None,
                        help="time a range test of this many steps and scale it to the configured length")
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> None:
    args, overrides = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    defaults, autolr_defaults, unit = SETTINGS[args.setting]

    # `schedule.*` overrides (e.g. schedule.interval=100) apply to the AutoLR config only.
    baseline_cfg = compose_config([*defaults, *(o for o in overrides if not o.startswith("schedule."))])
    autolr_cfg = compose_config([*defaults, "schedule=autolr", *autolr_defaults, *overrides])
    config = autolr_config(autolr_cfg.schedule)
    bench_config = config
    if args.range_test_steps is not None:
        bench_config = replace(config, range_test=replace(config.range_test, steps=args.range_test_steps))

    device = prepare(baseline_cfg)
    parts = build_components(baseline_cfg, device)
    task, optimizer = parts.task, parts.optimizer
    initial = (copy.deepcopy(task.model.state_dict()), copy.deepcopy(optimizer.state_dict()))
    loader = iter(task.train_loader(parts.batch_size, epoch_generator(baseline_cfg.seed, 0)))
    batches = [next(loader) for _ in range(args.steps + 2)]
    warmup, timed = batches[:2], batches[2:]
    print(f"{baseline_cfg.dataset.name} / {baseline_cfg.model.name} / adam on {device} "
          f"({torch.get_num_threads()} threads), batch {parts.batch_size}, {parts.steps_per_epoch} steps per epoch")

    # Baseline: the dataset's recipe schedule.
    baseline = build_schedule(baseline_cfg.schedule, optimizer, baseline_cfg.opt.lr, parts.steps_per_epoch,
                              parts.total_steps, make_tuner=None)
    timed_steps(parts, baseline, warmup, 0)
    base_seconds, units = timed_steps(parts, baseline, timed, len(warmup))
    print(f"baseline: {args.steps} steps, {units} {unit} in {base_seconds:.1f}s = "
          f"{units / base_seconds:.2f} {unit}/s ({base_seconds / args.steps:.3f}s per step)")

    # AutoLR from the same initial state: range test, training steps, then forced searches.
    task.model.load_state_dict(initial[0])
    optimizer.load_state_dict(initial[1])
    tuner = AutoLR(task.model, optimizer, task.loss, parts.batch_source(), parts.total_steps, bench_config,
                   train_step=parts.train_step, seed=autolr_cfg.seed)
    started = time.perf_counter()
    tuner.start()
    range_test_seconds = time.perf_counter() - started
    range_test_steps = max(tuner.extra.train_steps, 1)
    full_range_test_seconds = range_test_seconds / range_test_steps * config.range_test.steps
    tuner.next_search_step = math.inf  # searches are timed apart, not inside the timed steps
    timed_steps(parts, AutoLRSchedule(tuner), warmup, 0)
    autolr_seconds, autolr_units = timed_steps(parts, AutoLRSchedule(tuner), timed, len(warmup))
    search_seconds = []
    for number in range(args.searches):
        started = time.perf_counter()
        tuner.search(len(batches) + number)
        search_seconds.append(time.perf_counter() - started)
    search_mean = sum(search_seconds) / max(len(search_seconds), 1)
    print(f"autolr:   {args.steps} steps, {autolr_units} {unit} in {autolr_seconds:.1f}s = "
          f"{autolr_units / autolr_seconds:.2f} {unit}/s; range test {range_test_steps} steps "
          f"in {range_test_seconds:.1f}s; {args.searches} searches, {search_mean:.1f}s each "
          f"({search_mean / (base_seconds / args.steps):.1f} baseline steps)")
    print_full_run(baseline_cfg, parts, config, base_seconds + autolr_seconds, 2 * args.steps,
                   units / args.steps, full_range_test_seconds, search_mean, unit)


def print_full_run(cfg, parts, config, seconds: float, steps: int, units_per_step: float,
                   range_test_seconds: float, search_seconds: float, unit: str) -> None:
    """Print the throughput of a full run of this config under each schedule.

    A training step does the same work under either schedule, so both runs use the mean step time of
    the two timed stretches, which damps the timing noise.
    """
    total = parts.total_steps
    searches = max(0, math.ceil((total - int(config.explore_fraction * total)) / config.interval))
    base_run = total * seconds / steps
    autolr_run = base_run + range_test_seconds + searches * search_seconds
    print(f"full run ({cfg.trainer.epochs} epochs, {total} steps, range test {config.range_test.steps} steps, "
          f"{searches} searches, evaluation excluded): baseline {total * units_per_step / base_run:.2f} {unit}/s, "
          f"AutoLR {total * units_per_step / autolr_run:.2f} {unit}/s including its extra compute "
          f"({100 * (autolr_run / base_run - 1):+.1f}% time)")


if __name__ == "__main__":
    main(sys.argv[1:])
