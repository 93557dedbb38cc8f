"""Shared fixtures: a results folder per test and an in-process `repro` command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from repro.cli import main

ROOT = Path(__file__).resolve().parents[1]

# Two threads keep the suite's timing close to CI's 2-core machine whatever this machine has.
torch.set_num_threads(min(2, torch.get_num_threads()))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def results_dir(tmp_path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    return folder


@pytest.fixture
def repro(results_dir, capsys):
    """Run `repro <command> <args>` in this process with results under a temporary folder.

    Returns (exit status, stdout, stderr).
    """

    def invoke(command: str, *args: str, results: Path | None = None) -> tuple[int, str, str]:
        overrides = [f"paths.results_dir={results or results_dir}", f"paths.log_dir={results_dir.parent / 'logs'}"]
        try:
            status = main([command, *args, *overrides])
        except SystemExit as stop:
            status = stop.code
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return invoke


def run_folders(results_dir: Path) -> list[Path]:
    return sorted(path.parent for path in results_dir.rglob("run.json"))


def read_run(folder: Path) -> tuple[dict, pd.DataFrame]:
    return json.loads((folder / "run.json").read_text()), pd.read_csv(folder / "epochs.csv")
