"""Training throughput of the CPU-scale translation setting, baseline vs AutoLR, in one process.

    .venv/bin/python bench/bench_translation.py [--steps 20] [--searches 2] [HYDRA OVERRIDES...]
    .venv/bin/python bench/bench_translation.py trainer.threads=2 schedule.range_test.max_lr=0.1

Both schedules start from the same initial weights and train `--steps` timed steps on the same
token-count batches (after 2 untimed warm-up steps). AutoLR then runs its LR range test and
`--searches` searches, each timed. A bench this short holds only a few searches, so the AutoLR
line for a full run is computed from the measured parts. That line adds one range test and
(total steps - explore steps) / interval searches at the measured times to the run's training
steps. Evaluation is left out of both, because it costs the same.
Tokens are target tokens (the ones the per-token loss averages over), padding excluded.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import sys
import time
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

DEFAULTS = ["dataset=multi30k", "model=transformer_small", "opt=adam"]


def compose_config(overrides: list[str]):
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(ROOT))
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*DEFAULTS, *overrides])
    OmegaConf.resolve(cfg)
    return cfg


def timed_steps(parts, schedule, batches: list, first_step: int) -> tuple[float, int]:
    """Train on `batches` under `schedule` and return (seconds, target tokens)."""
    pad = parts.task.pad_id
    tokens = 0
    started = time.perf_counter()
    for offset, batch in enumerate(batches):
        schedule.apply(first_step + offset)
        batch = parts.task.to_device(batch)
        loss = parts.train_step(batch)
        tokens += int(batch[2].ne(pad).sum())
    float(loss)  # wait for the last step on an asynchronous device
    return time.perf_counter() - started, tokens


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per schedule (default 20)")
    parser.add_argument("--searches", type=int, default=2, help="AutoLR searches to time (default 2)")
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING)

    # `schedule.*` overrides (e.g. schedule.range_test.steps=20) apply to the AutoLR config only.
    baseline_cfg = compose_config([o for o in overrides if not o.startswith("schedule.")])
    autolr_cfg = compose_config([*overrides, "schedule=autolr"])
    device = prepare(baseline_cfg)
    parts = build_components(baseline_cfg, device)
    task, optimizer = parts.task, parts.optimizer
    initial = (copy.deepcopy(task.model.state_dict()), copy.deepcopy(optimizer.state_dict()))
    loader = iter(task.train_loader(parts.batch_size, epoch_generator(baseline_cfg.seed, 0)))
    batches = [next(loader) for _ in range(args.steps + 2)]
    warmup, timed = batches[:2], batches[2:]

    print(f"{baseline_cfg.dataset.name} / {baseline_cfg.model.name} / adam on {device} "
          f"({torch.get_num_threads()} threads), at most {parts.batch_size} tokens per batch, "
          f"{parts.steps_per_epoch} steps per epoch")

    # Baseline: the dataset's recipe schedule (inverse square root after warm-up).
    baseline = build_schedule(baseline_cfg.schedule, optimizer, baseline_cfg.opt.lr, parts.steps_per_epoch,
                              parts.total_steps, make_tuner=None)
    timed_steps(parts, baseline, warmup, 0)
    base_seconds, tokens = timed_steps(parts, baseline, timed, len(warmup))
    base_rate = tokens / base_seconds
    print(f"baseline: {args.steps} steps, {tokens} target tokens in {base_seconds:.1f}s = "
          f"{base_rate:.0f} tokens/s ({base_seconds / args.steps:.3f}s per step)")

    # AutoLR from the same initial state: range test, training steps, then forced searches.
    task.model.load_state_dict(initial[0])
    optimizer.load_state_dict(initial[1])
    config = autolr_config(autolr_cfg.schedule)
    tuner = AutoLR(task.model, optimizer, task.loss, parts.batch_source(), parts.total_steps, config,
                   train_step=parts.train_step, seed=autolr_cfg.seed)
    started = time.perf_counter()
    tuner.start()
    range_test_seconds = time.perf_counter() - started
    range_test_steps = tuner.extra.train_steps
    tuner.next_search_step = math.inf  # searches are timed apart, not inside the timed steps
    timed_steps(parts, AutoLRSchedule(tuner), warmup, 0)
    autolr_seconds, autolr_tokens = timed_steps(parts, AutoLRSchedule(tuner), timed, len(warmup))
    search_seconds = []
    for number in range(args.searches):
        started = time.perf_counter()
        tuner.search(len(batches) + number)
        search_seconds.append(time.perf_counter() - started)
    search_mean = sum(search_seconds) / max(len(search_seconds), 1)
    autolr_rate = autolr_tokens / autolr_seconds
    print(f"autolr:   {args.steps} steps, {autolr_tokens} target tokens in {autolr_seconds:.1f}s = "
          f"{autolr_rate:.0f} tokens/s; range test {range_test_steps} steps "
          f"in {range_test_seconds:.1f}s; {args.searches} searches, {search_mean:.1f}s each "
          f"({search_mean / (base_seconds / args.steps):.1f} baseline steps)")

    # A full run of this config. A training step does the same work under either schedule, so both
    # runs use the mean step time of the two timed stretches, which damps the timing noise.
    total = parts.total_steps
    searches = max(0, math.ceil((total - int(config.explore_fraction * total)) / config.interval))
    step_seconds = (base_seconds + autolr_seconds) / (2 * args.steps)
    tokens_per_step = tokens / args.steps
    base_run = total * step_seconds
    autolr_run = base_run + range_test_seconds + searches * search_mean
    print(f"full run ({baseline_cfg.trainer.epochs} epochs, {total} steps, {searches} searches, evaluation "
          f"excluded): baseline {total * tokens_per_step / base_run:.0f} tokens/s, AutoLR "
          f"{total * tokens_per_step / autolr_run:.0f} tokens/s including its extra compute "
          f"({100 * (autolr_run / base_run - 1):+.1f}% time)")


if __name__ == "__main__":
    main(sys.argv[1:])
