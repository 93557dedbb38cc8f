"""Benchmark of data-parallel training on CPUs: 2 gloo processes against 1, at the same global batch.

Both setups train the same model on the same global batches with repro's train step (the same
code path `torchrun -m repro run` takes). Each process uses `--threads` torch threads. Prints the
examples per second of each setup and their ratio. On a CPU the two processes share the machine's
cores and memory bandwidth, so the ratio measures the overhead of gloo's gradient all-reduce
rather than a speed-up. docs/scaling.md gives the scaling expected on GPUs.

    python bench/bench_ddp.py [--steps 30] [--warmup 5] [--threads 1] [overrides ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OVERRIDES = ("dataset=mnist_5k", "trainer.batch_size=128")


def compose_config(overrides: list[str]):
    import repro  # noqa: F401  (registers the ${project_root:} resolver)

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def measure(rank: int, world_size: int, port: int, args, results) -> None:
    """Train `args.warmup` + `args.steps` steps on this rank; rank 0 reports global examples/s."""
    from repro.components import build_components, prepare
    from repro.distributed import SINGLE, init_distributed
    from repro.train.loop import epoch_generator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    cfg = compose_config([*args.overrides, f"trainer.threads={args.threads}", "trainer.device=cpu"])
    env = init_distributed("cpu") if world_size > 1 else SINGLE
    device = prepare(cfg)
    parts = build_components(cfg, device, env)
    def epochs():
        """Yield batches epoch after epoch, in the order a run would see them."""
        for epoch in range(1_000_000):
            generator = epoch_generator(cfg.seed, epoch)
            if env.enabled:
                yield from parts.task.train_shard_loader(parts.batch_size, generator, 0, env)
            else:
                yield from parts.task.train_loader(parts.batch_size, generator, 0)

    batches = epochs()
    parts.task.model.train()

    def train(steps: int) -> None:
        for _ in range(steps):
            loss = parts.train_step(parts.task.to_device(next(batches)))
        float(loss)  # wait for the last step

    train(args.warmup)
    if env.enabled:
        dist.barrier()
    started = time.perf_counter()
    train(args.steps)
    if env.enabled:
        dist.barrier()
    seconds = time.perf_counter() - started
    if rank == 0:
        results.put(args.steps * parts.batch_size / seconds)
    if env.enabled:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_setup(world_size: int, args) -> float:
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(measure, args=(world_size, _free_port(), args, results), nprocs=world_size,
                       start_method="spawn")
    return results.get(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    parser.add_argument("overrides", nargs="*", default=list(DEFAULT_OVERRIDES),
                        help=f"Hydra overrides of the setting (default: {' '.join(DEFAULT_OVERRIDES)})")
    args = parser.parse_args()

    print(f"setting: {' '.join(args.overrides)}; {args.threads} thread(s) per process, "
          f"{os.cpu_count()} CPUs visible, torch {torch.__version__}")
    single = run_setup(1, args)
    print(f"1 process:           {single:8.1f} examples/s")
    parallel = run_setup(2, args)
    print(f"2 gloo processes:    {parallel:8.1f} examples/s")
    print(f"throughput ratio 2/1: {parallel / single:.2f}")


if __name__ == "__main__":
    main()
