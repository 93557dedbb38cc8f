"""Data-parallel runs (torchrun, gloo, 2 CPU processes) and multirun sweeps through Hydra launchers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import ROOT, read_run, run_folders
from repro.autolr.ranks import check_same_value, mean_loss

# A tiny run: 8 steps per epoch at a global batch of 32; under AutoLR a range test and three searches.
SMALL = {"dataset.max_train_examples": 256, "dataset.max_test_examples": 128, "trainer.batch_size": 32,
         "trainer.epochs": 2, "trainer.log_every": 4, "trainer.threads": 1, "trainer.progress": "false"}
# The sweep starts at 1e-3 so that its 20 steps find an LR whose candidates' losses differ by far
# more than floating-point noise: the searches' decisions are then stable across process counts.
AUTOLR = {"schedule.interval": 4, "schedule.range_test.steps": 20, "schedule.range_test.min_lr": 0.001}


def small(autolr: bool = True, **changes) -> tuple[str, ...]:
    """SMALL (and AUTOLR) as overrides, with `changes` given as key__subkey=value."""
    options = {**SMALL, **(AUTOLR if autolr else {"schedule": "baseline"})}
    options.update({key.replace("__", "."): value for key, value in changes.items()})
    return tuple(f"{key}={value}" for key, value in options.items())
TIME_COLUMNS = ["time_s", "autolr_time_s"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun_command(results_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}", "-m", "repro", "run", *overrides,
            f"paths.results_dir={results_dir}", f"paths.log_dir={results_dir.parent / 'logs'}"]


def _torchrun_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _torchrun(results_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(_torchrun_command(results_dir, *overrides), cwd=ROOT, env=_torchrun_env(),
                          capture_output=True, text=True, timeout=600)


def _compare_csv(left: Path, right: Path, rtol: float) -> None:
    a, b = pd.read_csv(left), pd.read_csv(right)
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b), f"{left.name}: {len(a)} rows vs {len(b)}"
    for column in a.columns:
        if column in TIME_COLUMNS or column == "reason":  # reason quotes numbers to 3 digits
            continue
        if not pd.api.types.is_numeric_dtype(a[column]):
            assert list(a[column].fillna("")) == list(b[column].fillna("")), column
            continue
        assert a[column].to_numpy() == pytest.approx(b[column].to_numpy(), rel=rtol, abs=1e-6), column


def test_ddp_matches_single_process(repro, results_dir):
    single, parallel = results_dir / "single", results_dir / "ddp"
    assert repro("run", *small(), results=single)[0] == 0
    finished = _torchrun(parallel, *small())
    assert finished.returncode == 0, finished.stderr[-3000:]

    (single_folder,) = run_folders(single)
    (ddp_folder,) = run_folders(parallel)  # rank 1 made no folder of its own
    assert sorted(p.name for p in ddp_folder.iterdir()) == sorted(p.name for p in single_folder.iterdir())
    record = read_run(ddp_folder)[0]
    assert record["status"] == "completed"
    assert record["data_parallel"] == {"processes": 2, "backend": "gloo", "global_batch": 32, "per_process_batch": 16}
    single_max_lr = read_run(single_folder)[0]["range_test"]["suggested_max_lr"]
    assert record["range_test"]["suggested_max_lr"] == pytest.approx(single_max_lr, rel=1e-6)
    _compare_csv(single_folder / "epochs.csv", ddp_folder / "epochs.csv", rtol=1e-3)
    _compare_csv(single_folder / "steps.csv", ddp_folder / "steps.csv", rtol=1e-3)
    _compare_csv(single_folder / "range_test.csv", ddp_folder / "range_test.csv", rtol=1e-3)

    # Every search: the same candidates and decision, and the same chosen LR as one process.
    searches_single = pd.read_csv(single_folder / "autolr.csv")
    searches_ddp = pd.read_csv(ddp_folder / "autolr.csv")
    assert searches_ddp["search_id"].nunique() == 3
    assert list(searches_ddp["decision"]) == list(searches_single["decision"])
    assert searches_ddp["chosen_lr"].to_numpy() == pytest.approx(searches_single["chosen_lr"].to_numpy(), rel=1e-3)
    # Rank 1 logs only warnings, so each line of train.log comes from rank 0 once.
    log_lines = (ddp_folder / "train.log").read_text().splitlines()
    assert sum("AutoLR search 0 " in line for line in log_lines) == 1
    assert "data parallel: 2 processes, global batch 32, 16 per process" in (ddp_folder / "train.log").read_text()


def test_ddp_rejects_indivisible_batch(tmp_path):
    results_dir = tmp_path / "results"
    finished = _torchrun(results_dir, *small(autolr=False, trainer__batch_size=33, trainer__epochs=1))
    assert finished.returncode != 0
    assert "trainer.batch_size=33 (the global batch) does not divide among 2 processes" in finished.stderr


def _rank_worker(rank: int, port: int, failures) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        failures.put(("mean", mean_loss(torch.tensor(float(rank + 1)))))
        check_same_value(0.25, "an agreed LR")
        try:
            check_same_value(0.1 * (rank + 1), "the chosen LR")
            failures.put(("disagreement", "not raised"))
        except RuntimeError as error:
            failures.put(("disagreement", str(error)))
    finally:
        dist.destroy_process_group()


def test_rank_checks_mean_and_disagreement():
    context = mp.get_context("fork")
    queue = context.Queue()
    mp.start_processes(_rank_worker, args=(_free_port(), queue), nprocs=2, start_method="fork")
    results = [queue.get(timeout=30) for _ in range(4)]
    means = [value for kind, value in results if kind == "mean"]
    messages = [value for kind, value in results if kind == "disagreement"]
    assert means == [1.5, 1.5]
    assert len(messages) == 2
    for message in messages:
        assert message.startswith("data-parallel ranks disagree on the chosen LR (rank 0: 0.1, rank 1: 0.2")


def test_ddp_resumes_after_kill(repro, results_dir):
    overrides = small(dataset__max_train_examples=512, trainer__epochs=4, trainer__auto_resume="true")
    parallel = results_dir / "ddp"
    process = subprocess.Popen(_torchrun_command(parallel, *overrides), cwd=ROOT, env=_torchrun_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(parallel.rglob("checkpoint.pt")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # torchrun passes it on to both ranks
    _, stderr = process.communicate(timeout=120)
    (folder,) = run_folders(parallel)
    record, epochs = read_run(folder)
    assert record["status"] == "interrupted", stderr[-3000:]
    assert 1 <= len(epochs) < 4

    # The same command again finds the unfinished folder and continues it from its checkpoint.
    finished = _torchrun(parallel, *overrides)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert run_folders(parallel) == [folder]
    record, epochs = read_run(folder)
    assert record["status"] == "completed"
    assert len(record["sessions"]) == 2
    assert record["sessions"][0]["status"] == "interrupted"
    assert list(epochs["epoch"]) == [1, 2, 3, 4]

    single = results_dir / "single"
    assert repro("run", *overrides, results=single)[0] == 0
    (single_folder,) = run_folders(single)
    _compare_csv(single_folder / "epochs.csv", folder / "epochs.csv", rtol=1e-3)
    # The fit coefficients amplify rounding (the losses are nearly linear in the LR), so compare
    # what was measured and decided.
    searches_single = pd.read_csv(single_folder / "autolr.csv")
    searches_ddp = pd.read_csv(folder / "autolr.csv")
    assert list(searches_ddp["decision"]) == list(searches_single["decision"])
    for column in ("search_id", "step", "candidate_lr", "loss", "chosen_lr"):
        assert searches_ddp[column].to_numpy() == pytest.approx(searches_single[column].to_numpy(), rel=1e-3), column


def test_auto_resume_skips_completed_runs(repro, results_dir):
    overrides = small(autolr=False, trainer__epochs=1, trainer__auto_resume="true")
    assert repro("run", *overrides)[0] == 0
    assert repro("run", *overrides)[0] == 0
    assert [folder.name for folder in run_folders(results_dir)] == ["seed0", "seed0-2"]


def test_joblib_multirun_makes_complete_folders(repro, results_dir):
    status, _, _ = repro("run", "-m", "hydra/launcher=joblib_local", "seed=0,1,2", *small(autolr=False))
    assert status == 0
    folders = run_folders(results_dir)
    assert [folder.name for folder in folders] == ["seed0", "seed1", "seed2"]
    for folder in folders:
        record, epochs = read_run(folder)
        assert record["status"] == "completed"
        assert list(epochs["epoch"]) == [1, 2]
        assert {"config.yaml", "steps.csv", "train.log", "checkpoint.pt"} <= {p.name for p in folder.iterdir()}


def test_slurm_launcher_config_composes():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                                           "hydra.launcher.gpus_per_node=4", "hydra.launcher.tasks_per_node=4"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu"
    assert launcher.gpus_per_node == 4
    assert launcher.tasks_per_node == 4
    assert launcher.timeout_min == 1440


def test_submitit_local_sweep_runs_two_points(repro, results_dir):
    status, _, err = repro("run", "-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
                           "seed=0,1", *small(autolr=False, trainer__epochs=1))
    assert status == 0, err[-3000:]
    folders = run_folders(results_dir)
    assert [folder.name for folder in folders] == ["seed0", "seed1"]
    for folder in folders:
        assert read_run(folder)[0]["status"] == "completed"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_cpu(repro, results_dir, precision):
    status, _, err = repro("run", *small(trainer__epochs=1, trainer__precision=precision,
                                         trainer__channels_last="true"))
    assert status == 0, err[-3000:]
    record, epochs = read_run(run_folders(results_dir)[0])
    assert record["status"] == "completed"
    assert epochs["train_loss"].notna().all()


def test_invalid_precision_is_rejected(repro):
    status, _, err = repro("run", *small(autolr=False, trainer__precision="fp8"))
    assert status == 2
    assert "invalid value trainer.precision='fp8'; use fp32, bf16 or fp16" in err
