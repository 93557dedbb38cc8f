"""`repro run` end to end on the embedded default: files, sweeps, resume, interrupts, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, read_run, run_folders
from repro.results.schema import AUTOLR_COLUMNS, RANGE_TEST_COLUMNS, STEP_COLUMNS

TIME_COLUMNS = ["time_s", "autolr_time_s"]
# A short AutoLR run with three searches, in a few seconds on a CPU.
SHORT = ("trainer.epochs=4", "schedule.interval=20", "schedule.range_test.steps=50")


def test_default_run_writes_every_file(repro, results_dir):
    status, out, _ = repro("run", *SHORT)
    assert status == 0
    (folder,) = run_folders(results_dir)
    assert folder.relative_to(results_dir).as_posix() == "digits-small_cnn/autolr-sgd/seed0"
    assert f"results: {folder}" in out

    record, epochs = read_run(folder)
    assert record["status"] == "completed"
    assert record["versions"]["torch"]
    assert list(epochs["epoch"]) == [1, 2, 3, 4]
    assert list(epochs.columns[:4]) == ["epoch", "step", "lr", "train_loss"]
    assert {"test_loss", "test_acc", "autolr_extra_steps"} <= set(epochs.columns)
    assert epochs["test_acc"].iloc[-1] > 50

    assert tuple(pd.read_csv(folder / "steps.csv").columns) == STEP_COLUMNS
    searches = pd.read_csv(folder / "autolr.csv")
    assert tuple(searches.columns) == AUTOLR_COLUMNS
    assert searches["search_id"].nunique() >= 3
    assert set(searches["role"]) >= {"fit", "test"}
    assert tuple(pd.read_csv(folder / "range_test.csv").columns) == RANGE_TEST_COLUMNS
    assert (folder / "config.yaml").is_file()


def test_rerun_never_overwrites(repro, results_dir):
    for _ in range(2):
        assert repro("run", "trainer.epochs=1", "schedule=baseline")[0] == 0
    names = sorted(folder.name for folder in run_folders(results_dir))
    assert names == ["seed0", "seed0-2"]


def test_baseline_step_decay_follows_milestones(repro, results_dir):
    status, _, _ = repro("run", "schedule=baseline", "trainer.epochs=3", "schedule.milestones=[1,2]")
    assert status == 0
    _, epochs = read_run(run_folders(results_dir)[0])
    assert epochs["lr"].tolist() == pytest.approx([0.1, 0.01, 0.001])


def test_multirun_sweep_makes_one_folder_per_point(repro, results_dir):
    status, _, _ = repro("run", "-m", "opt=sgd,adam", "schedule=baseline,autolr", "trainer.epochs=1")
    assert status == 0
    names = sorted(folder.parent.name for folder in run_folders(results_dir))
    assert names == ["autolr-adam", "autolr-sgd", "baseline-adam", "baseline-sgd"]
    for folder in run_folders(results_dir):
        assert read_run(folder)[0]["status"] == "completed"


def _start_cli(results_dir: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "repro", "run", *args, f"paths.results_dir={results_dir}",
               f"paths.log_dir={results_dir.parent / 'logs'}", "trainer.threads=1"]
    # A shell starts background jobs with SIGINT ignored, and Python keeps an inherited SIG_IGN, so
    # restore the default: the interrupt test must not depend on how pytest was started.
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_restore_default_sigint)


def _restore_default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_rows(csv_path: Path, rows: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if csv_path.exists() and len(csv_path.read_text().splitlines()) > rows:
            return
        if process.poll() is not None:
            raise AssertionError(f"run ended early: {process.stderr.read()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{csv_path} did not reach {rows} rows in {timeout} s")


RESUME_ARGS = ("trainer.epochs=5", "schedule.interval=15", "schedule.range_test.steps=30")


def test_resume_after_kill_matches_uninterrupted_run(repro, results_dir, tmp_path):
    killed_dir = tmp_path / "killed"
    process = _start_cli(killed_dir, *RESUME_ARGS)
    folder = killed_dir / "digits-small_cnn/autolr-sgd/seed0"
    _wait_for_rows(folder / "epochs.csv", 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads((folder / "run.json").read_text())["status"] == "running"

    status, _, err = repro("run", *RESUME_ARGS, "trainer.threads=1", f"resume={folder}", results=killed_dir)
    assert status == 0, err
    status, _, err = repro("run", *RESUME_ARGS, "trainer.threads=1")
    assert status == 0, err
    (reference,) = run_folders(results_dir)

    for name, drop in (("epochs.csv", TIME_COLUMNS), ("steps.csv", []), ("autolr.csv", [])):
        resumed = pd.read_csv(folder / name).drop(columns=drop)
        uninterrupted = pd.read_csv(reference / name).drop(columns=drop)
        pd.testing.assert_frame_equal(resumed, uninterrupted, check_exact=True, obj=name)
    assert json.loads((folder / "run.json").read_text())["status"] == "completed"


def test_ctrl_c_marks_run_interrupted(results_dir):
    process = _start_cli(results_dir, *RESUME_ARGS)
    folder = results_dir / "digits-small_cnn/autolr-sgd/seed0"
    _wait_for_rows(folder / "epochs.csv", 1, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "interrupted"
    assert "resume=" in record["message"]
    assert len(pd.read_csv(folder / "epochs.csv")) >= 1


def test_nan_loss_stops_run_as_diverged(repro, results_dir):
    status, _, err = repro("run", "schedule=baseline", "opt.lr=1e12", "trainer.epochs=2", "trainer.log_every=5")
    assert status == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: training loss became")
    assert "at step" in line
    assert "lr 1e+12" in line
    record, epochs = read_run(run_folders(results_dir)[0])
    assert record["status"] == "diverged"
    assert "at step" in record["message"]


def test_unknown_dataset_lists_choices(repro):
    status, _, err = repro("run", "dataset=cifar100")
    assert status == 2
    assert "unknown dataset 'cifar100'" in err
    assert "cifar10, digits" in err


@pytest.mark.parametrize("override, group", [("opt=lamb", "opt"), ("schedule=cyclic", "schedule")])
def test_unknown_choice_lists_choices(repro, override, group):
    status, _, err = repro("run", override)
    assert status == 2
    assert f"unknown {group}" in err
    assert "choose one of" in err


def test_wrong_type_override_names_value(repro, results_dir):
    status, _, err = repro("run", "trainer.epochs=ten")
    assert status == 2
    assert "trainer.epochs='ten'" in err
    assert "integer" in err
    assert run_folders(results_dir) == []


def test_missing_cifar_folder_names_path(repro, results_dir, tmp_path):
    status, _, err = repro("run", "dataset=cifar10", f"dataset.root={tmp_path / 'nowhere'}", "dataset.download=false")
    assert status == 2
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in err
    assert "data_batch_1" in err
    assert "dataset.download=true" in err

    (folder,) = run_folders(results_dir)
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "failed"
    assert str(tmp_path / "nowhere") in record["message"]


def test_failed_download_says_so(repro, tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets.utils as tv_utils

    def no_network(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_url", no_network)
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", no_network)
    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", no_network, raising=False)
    status, _, err = repro("run", "dataset=cifar10", f"dataset.root={tmp_path / 'cifar'}")
    assert status == 2
    assert "download of CIFAR-10" in err
    assert "failed" in err
    assert str(tmp_path / "cifar") in err


def test_missing_resume_folder_is_rejected(repro, tmp_path):
    status, _, err = repro("run", f"resume={tmp_path / 'absent'}")
    assert status == 2
    assert "no run.json" in err


def test_resume_with_other_overrides_is_rejected(repro, results_dir):
    assert repro("run", "trainer.epochs=1", "schedule=baseline")[0] == 0
    (folder,) = run_folders(results_dir)
    status, _, err = repro("run", "trainer.epochs=2", "schedule=baseline", f"resume={folder}")
    assert status == 2
    assert "trainer.epochs" in err


@pytest.mark.skipif(os.environ.get("CUDA_VISIBLE_DEVICES") is None and __import__("torch").cuda.is_available(),
                    reason="CUDA is available here")
def test_cuda_request_without_cuda_fails(repro):
    status, _, err = repro("run", "trainer.device=cuda")
    assert status == 2
    assert "CUDA is not available" in err


def test_optimizer_without_recipe_is_rejected(repro):
    status, _, err = repro("run", "dataset=multi30k", "opt=sgd")
    assert status == 2
    assert "no recipe for opt=sgd" in err
    assert "adam" in err
