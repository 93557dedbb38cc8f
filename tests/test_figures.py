"""Figures: every registry entry draws from CSVs in the real schema, and missing runs are reported.

The results folders here are written by the tests: one real `repro run` on the digits data supplies
config.yaml and run.json as the runner writes them, and synthetic curves fill CSVs whose columns come
from repro.results.schema.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from repro.figures.build import build_figures, format_table
from repro.figures.cli import figures_command, parse_numbers
from repro.figures.curves import CurvesFigure, SummaryFigure
from repro.figures.data import Curve, ResultsIndex, parse_leaf
from repro.figures.fits import FitFigure
from repro.figures.registry import FIGURES, figure_by_number
from repro.figures.settings import Missing
from repro.figures.splitaxis import split_ranges
from repro.figures.studies import NoiseFigure, RangeTestFigure
from repro.figures.style import close_figure, save_figure
from repro.results.schema import (AUTOLR_COLUMNS, FIT_STUDY_COLUMNS, NOISE_STUDY_COLUMNS, RANGE_TEST_COLUMNS,
                                  STEP_COLUMNS, epoch_columns)

ROOT = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 20
LOG_EVERY = 5


# ----------------------------------------------------------------------------------------------
# A real run, and synthetic run folders in its format


@pytest.fixture(scope="session")
def real_run(tmp_path_factory) -> Path:
    """A real two-epoch AutoLR run on the digits data (about 5 s on 2 cores)."""
    results = tmp_path_factory.mktemp("real_results")
    # One thread: on a busy machine, torch's multi-threaded kernels spend most of their time waiting.
    command = [sys.executable, "-m", "repro", "run", "trainer.epochs=2", "trainer.progress=false",
               "trainer.threads=1", f"paths.results_dir={results}"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return results / "digits-small_cnn" / "autolr-sgd" / "seed0"


def write_csv(path: Path, columns, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


class ResultsWriter:
    """Writes run and study folders with the runner's config.yaml and run.json layout."""

    def __init__(self, root: Path, template: Path):
        self.root = root
        self.config = yaml.safe_load((template / "config.yaml").read_text())
        self.record = json.loads((template / "run.json").read_text())

    def folder(self, dataset, model, group, opt, seed=0, suffix=None, *, label=None, scale="cpu", epochs=6,
               recipe_epochs=6, status="completed", lr=0.1, milestones=(), extra=None) -> Path:
        leaf = f"seed{seed}" + (f"-{suffix}" if suffix else "")
        path = self.root / f"{dataset}-{model}" / f"{group}-{opt}" / leaf
        path.mkdir(parents=True)
        config = copy.deepcopy(self.config)
        config["dataset"].update(name=dataset, label=label or dataset, scale=scale)
        config["dataset"]["recipe"]["epochs"] = recipe_epochs
        config["model"]["name"] = model
        config["schedule"] = {"name": group, "kind": "step", "milestones": list(milestones), "gamma": 0.1}
        config["opt"].update(name=opt, lr=lr)
        config["trainer"]["epochs"] = epochs
        config.update(seed=seed, suffix=suffix)
        (path / "config.yaml").write_text(yaml.safe_dump(config))
        record = copy.deepcopy(self.record)
        record["status"] = status
        record.update(extra or {})
        (path / "run.json").write_text(json.dumps(record, indent=2))
        return path

    def run(self, dataset, model, schedule, opt, metrics=("test_loss", "test_acc"), seed=0, suffix=None,
            epochs=6, drop_at=None, **options) -> Path:
        """A training run with falling loss, rising accuracy and an LR schedule of `schedule`'s kind."""
        path = self.folder(dataset, model, schedule, opt, seed, suffix, epochs=epochs,
                           milestones=(drop_at,) if drop_at else (), **options)
        rng = np.random.default_rng(seed + len(str(path)))
        speed = 1.3 if schedule == "autolr" else 1.0

        def lr_at(epoch: float) -> float:
            if schedule == "autolr":
                return 1.0 * 0.3 ** max(0.0, epoch - 1)  # spans several decades
            if drop_at and epoch > drop_at:
                return 0.01
            return 0.1 if schedule == "constant" or epoch <= epochs / 2 else 0.01

        rows = []
        for epoch in range(1, epochs + 1):
            loss = 2.3 * math.exp(-speed * epoch) + 0.05 + 0.005 * rng.random()
            row = {"epoch": epoch, "step": epoch * STEPS_PER_EPOCH, "lr": lr_at(epoch), "train_loss": loss,
                   "time_s": epoch * 1.5, "autolr_time_s": 0.0, "autolr_extra_steps": 0, "autolr_extra_forward": 0}
            values = {"test_loss": loss * 1.2, "test_acc": 98 - 60 * math.exp(-speed * epoch) + rng.random(),
                      "test_top5": 99.5 - 30 * math.exp(-speed * epoch), "valid_loss": loss + 1.0,
                      "valid_ppl": math.exp(loss + 1.0), "train_ppl": math.exp(loss), "train_nll": loss,
                      "valid_nll": loss + 1.0, "eval_loss": loss + 0.5,
                      "em": 80 - 50 * math.exp(-speed * epoch), "f1": 88 - 50 * math.exp(-speed * epoch)}
            row.update({name: values[name] for name in metrics})
            rows.append(row)
        write_csv(path / "epochs.csv", epoch_columns(metrics), rows)

        step_rows = []
        for step in range(LOG_EVERY - 1, epochs * STEPS_PER_EPOCH, LOG_EVERY):
            epoch = step / STEPS_PER_EPOCH
            loss = 2.3 * math.exp(-speed * epoch) + 0.05
            step_rows.append({"step": step, "epoch": epoch, "lr": lr_at(epoch + 1e-9), "loss": loss, "loss_avg": loss})
        write_csv(path / "steps.csv", STEP_COLUMNS, step_rows)
        if schedule == "autolr":
            write_csv(path / "autolr.csv", AUTOLR_COLUMNS, autolr_rows())
            write_csv(path / "range_test.csv", RANGE_TEST_COLUMNS, range_test_rows())
        return path

    def pair(self, dataset, model, opt, seeds=(0,), **options) -> None:
        for seed in seeds:
            for schedule in ("baseline", "autolr"):
                self.run(dataset, model, schedule, opt, seed=seed, **options)

    def fit_study(self, dataset, model, opt="sgd", **options) -> Path:
        path = self.folder(dataset, model, "fit_study", opt, **options)
        write_csv(path / "fit_study.csv", FIT_STUDY_COLUMNS, fit_study_rows())
        return path

    def noise_study(self, dataset, model, opt="sgd", **options) -> Path:
        path = self.folder(dataset, model, "noise_study", opt, **options)
        rows = [{"superbatch": size, "draws": 20, "mean_loss": 0.5, "std_loss": 0.08 / math.sqrt(size) + 0.002}
                for size in (1, 2, 4, 8, 16, 32)]
        write_csv(path / "noise_study.csv", NOISE_STUDY_COLUMNS, rows)
        return path

    def range_test(self, dataset, model, opt="sgd", chosen=0.5, **options) -> Path:
        path = self.folder(dataset, model, "range_test", opt,
                           extra={"range_test": {"suggested_max_lr": chosen, "rule": "steepest descent"}}, **options)
        write_csv(path / "range_test.csv", RANGE_TEST_COLUMNS, range_test_rows())
        return path


def quadratic(a, b, c, lr):
    return a * lr * lr + b * lr + c


# Two fits: minimum at LR 0.4 inside the samples 0.1-0.8, and at LR 4.0 outside them.
FITS = ((0, 1.0, -0.8, 1.5, (0.1, 0.2, 0.4, 0.8)), (1, 0.05, -0.4, 1.5, (0.1, 0.2, 0.4, 0.8)))


def fit_study_rows():
    rows = []
    for fit_id, a, b, c, lrs in FITS:
        minimum = -b / (2 * a)
        inside = min(lrs) <= minimum <= max(lrs)
        common = {"fit_id": fit_id, "epoch": 1.0 + fit_id, "step": 20 * (fit_id + 1), "finite": True, "a": a, "b": b,
                  "c": c, "minimum_lr": minimum, "minimum_inside": inside, "test_error": 0.01}
        for lr in lrs:
            rows.append({**common, "lr": lr, "loss": quadratic(a, b, c, lr) + 0.01, "role": "fit"})
        for lr in (0.05, 1.6, 3.2):
            rows.append({**common, "lr": lr, "loss": quadratic(a, b, c, lr) + 0.05, "role": "test"})
        rows.append({**common, "lr": minimum, "loss": quadratic(a, b, c, minimum) + 0.3, "role": "true_at_minimum"})
    return rows


def autolr_rows():
    rows = []
    for search_id, a, b, c, lrs in FITS:
        minimum = -b / (2 * a)
        proposal = min(minimum, max(lrs) * 2.0)  # the trust region clamps the outside minimum
        common = {"search_id": search_id, "step": 30 + 20 * search_id, "epoch": 1.5 + search_id, "previous_lr": 0.4,
                  "max_lr": 1.0, "finite": True, "a": a, "b": b, "c": c, "test_error": 0.02, "proposal": proposal,
                  "chosen_lr": proposal, "decision": "fit" if proposal == minimum else "fit_clamped", "reason": ""}
        for lr in lrs:
            rows.append({**common, "candidate_lr": lr, "loss": quadratic(a, b, c, lr), "role": "fit"})
        rows.append({**common, "candidate_lr": 0.6, "loss": quadratic(a, b, c, 0.6) + 0.02, "role": "test"})
        rows.append({**common, "candidate_lr": proposal, "loss": quadratic(a, b, c, proposal) + 0.1, "role": "verify"})
    rows.append({**common, "search_id": 2, "candidate_lr": 50.0, "loss": "nan", "role": "fit", "finite": False,
                 "a": "", "b": "", "c": "", "proposal": "", "decision": "keep"})
    return rows


def range_test_rows():
    rows, smoothed = [], None
    for step, lr in enumerate(np.geomspace(1e-5, 10, 60)):
        loss = 2.3 - 1.5 / (1 + math.exp(-3 * (math.log10(lr) + 2))) + (8 * (lr - 2) if lr > 2 else 0)
        smoothed = loss if smoothed is None else 0.8 * smoothed + 0.2 * loss
        rows.append({"step": step, "lr": lr, "loss": loss, "smoothed_loss": smoothed})
    return rows


@pytest.fixture(scope="session")
def full_results(tmp_path_factory, real_run) -> Path:
    """Every run and study the registry reads, for every paper setting and stand-in."""
    root = tmp_path_factory.mktemp("results")
    writer = ResultsWriter(root, real_run)
    paper = {"scale": "paper", "recipe_epochs": 6}
    for opt in ("sgd", "momentum", "adam"):
        writer.pair("cifar10", "resnet18_cifar", opt, label="CIFAR-10", **paper)
        writer.pair("mnist_5k", "resnet18_mnist", opt, seeds=(0, 1), label="MNIST, 5k subset (CPU scale)")
        writer.pair("fashion_mnist", "resnet18_mnist", opt, label="Fashion-MNIST", scale="paper", epochs=3,
                    recipe_epochs=30)
    writer.run("cifar10", "resnet18_cifar", "constant", "sgd", epochs=8, label="CIFAR-10", **paper)
    writer.run("cifar10", "resnet18_cifar", "baseline", "sgd", epochs=8, suffix="drop4", drop_at=4, label="CIFAR-10",
               **paper)
    writer.pair("imagenet", "resnet50", "momentum", metrics=("test_loss", "test_acc", "test_top5"), label="ImageNet",
                **paper)
    writer.pair("multi30k", "transformer_small", "adam",
                metrics=("train_nll", "train_ppl", "valid_loss", "valid_nll", "valid_ppl"),
                label="Multi30k De-En (CPU scale)")
    writer.pair("squad_dev_split", "minilm", "adam", metrics=("eval_loss", "em", "f1"),
                label="SQuAD v1.1 dev split, MiniLM (CPU scale)")
    for dataset, model in (("cifar10", "resnet18_cifar"), ("mnist_5k", "resnet18_mnist"), ("imagenet", "resnet50")):
        writer.fit_study(dataset, model)
        writer.noise_study(dataset, model)
    writer.range_test("cifar10", "resnet18_cifar", label="CIFAR-10", **paper)
    return root


@pytest.fixture(scope="session")
def full_index(full_results) -> ResultsIndex:
    return ResultsIndex(full_results)


# ----------------------------------------------------------------------------------------------
# What each entry must draw


def expected_gids(entry) -> set[str]:
    if isinstance(entry, CurvesFigure):
        columns = [alternatives[0] for alternatives in entry.quantities]
        gids = {f"{column}/{part}" for column in columns for part in range(entry.parts)}
        return gids | ({"lr"} if entry.show_lr else set())
    if isinstance(entry, SummaryFigure):
        return {f"{panel.letter}:{panel.column[0]}" for panel in entry.panels} | {
            f"{panel.letter}:lr" for panel in entry.panels}
    if isinstance(entry, FitFigure):
        return {f"{panel.letter or 'fit'}:{panel.where}" for panel in entry.panels}
    if isinstance(entry, NoiseFigure):
        return {f"{panel.letter}:noise" for panel in entry.panels}
    if isinstance(entry, RangeTestFigure):
        return {"range_test"}
    raise AssertionError(f"no expectation for {type(entry).__name__}")


def axes_by_gid(figure) -> dict:
    return {ax.get_gid(): ax for ax in figure.axes if ax.get_gid()}


def test_registry_numbers_one_to_twenty():
    assert [entry.number for entry in FIGURES] == list(range(1, 21))
    assert len({entry.stem for entry in FIGURES}) == 20


@pytest.mark.parametrize("number", range(1, 21))
def test_entry_draws_expected_panels(number, full_index, tmp_path):
    entry = figure_by_number(number)
    drawn = entry.draw(full_index)
    try:
        gids = axes_by_gid(drawn.figure)
        assert set(gids) == expected_gids(entry)
        assert "missing" not in gids
        assert drawn.missing == []
        assert drawn.sources
        assert drawn.figure.get_suptitle().startswith(f"Figure {number}:")
        for gid, ax in gids.items():
            low, high = ax.get_ylim()
            assert low < high
            column, _, part = gid.partition("/")
            twin = gid.endswith(":lr")  # the right-hand LR axis shares its panel's x label
            if not twin and (not part or int(part) == entry.parts - 1):  # upper split panels hide theirs
                assert ax.get_xlabel() in ("epoch", "learning rate", "superbatch size (mini-batches)",
                                           "learning rate (one per training step)")
        (path,) = save_figure(drawn.figure, tmp_path, entry.stem, ("png",))
        assert path.stat().st_size > 10_000
    finally:
        close_figure(drawn.figure)


def test_split_panels_share_x_and_descend(full_index):
    drawn = figure_by_number(11).draw(full_index)  # CIFAR-10 Momentum, 3 parts
    try:
        gids = axes_by_gid(drawn.figure)
        for column in ("train_loss", "test_acc"):
            panels = [gids[f"{column}/{part}"] for part in range(3)]
            tops = [ax.get_ylim()[1] for ax in panels]
            bottoms = [ax.get_ylim()[0] for ax in panels]
            assert tops == sorted(tops, reverse=True)
            assert bottoms == sorted(bottoms, reverse=True)
            assert panels[0].get_xlim() == panels[-1].get_xlim()
            heights = [ax.get_ylim()[1] - ax.get_ylim()[0] for ax in panels]
            late_panel = heights[0] if column == "test_acc" else heights[-1]  # accuracy rises, loss falls
            assert late_panel == min(heights)
            assert not panels[0].spines["bottom"].get_visible()
            assert not panels[-1].spines["top"].get_visible()
        assert gids["train_loss/0"].get_title() == "training loss"
        assert gids["test_acc/1"].get_ylabel() == "test top-1 accuracy (%)"
        assert gids["lr"].get_yscale() == "log"  # AutoLR's LR spans decades
        assert gids["lr"].yaxis.get_label_position() == "right"
        lr_styles = {line.get_linestyle() for line in gids["lr"].get_lines()}
        assert lr_styles == {"--"}
        colours = {line.get_color() for line in gids["train_loss/0"].get_lines()}
        assert {"tab:orange", "tab:blue"} <= colours
    finally:
        close_figure(drawn.figure)


def test_seeds_drawn_as_mean_with_spread(full_index):
    drawn = figure_by_number(15).draw(full_index)  # mnist_5k has seeds 0 and 1
    try:
        ax = axes_by_gid(drawn.figure)["train_loss/0"]
        assert len(ax.collections) == 2  # one shaded band per schedule
        labels = [text.get_text() for text in drawn.figure.legends[0].get_texts()]
        assert labels == ["baseline (mean +- std, 2 seeds)", "AutoLR (mean +- std, 2 seeds)"]
        assert len(drawn.sources) == 4
    finally:
        close_figure(drawn.figure)


def test_titles_name_cpu_scale_stand_ins(full_index):
    mnist = figure_by_number(16).draw(full_index)
    fashion = figure_by_number(18).draw(full_index)
    cifar = figure_by_number(10).draw(full_index)
    try:
        assert "MNIST, 5k subset (CPU scale)" in mnist.figure.get_suptitle()
        assert "Fashion-MNIST, full data (3 epochs, CPU scale)" in fashion.figure.get_suptitle()
        assert "CPU scale" not in cifar.figure.get_suptitle()
    finally:
        for drawn in (mnist, fashion, cifar):
            close_figure(drawn.figure)


def test_fit_panels_inside_and_outside(full_index):
    drawn = figure_by_number(5).draw(full_index)
    try:
        gids = axes_by_gid(drawn.figure)
        for gid, inside in (("a:inside", True), ("b:outside", False)):
            ax = gids[gid]
            lines = {line.get_label(): line for line in ax.get_lines()}
            fit_lrs = lines["fit samples"].get_xdata()
            minimum = next(line for label, line in lines.items() if label.startswith("fitted minimum"))
            minimum_lr = minimum.get_xdata()[0]
            assert bool(min(fit_lrs) <= minimum_lr <= max(fit_lrs)) is inside
            assert lines["fit samples"].get_marker() == "^"
            assert lines["fit samples"].get_color() == "tab:orange"
            assert lines["test samples"].get_color() == "tab:green"
            assert minimum.get_color() == "tab:red"
            assert lines["fitted quadratic"].get_color() == "tab:blue"
            assert lines["true loss at the fitted minimum"].get_color() == "tab:purple"
        assert all("fit_study.csv" in source for source in drawn.sources)
    finally:
        close_figure(drawn.figure)


def test_fit_from_autolr_marks_clamped_proposal(full_index):
    drawn = figure_by_number(6).draw(full_index)  # IWSLT and SQuAD stand-ins have only autolr.csv
    try:
        ax = axes_by_gid(drawn.figure)["b:any"]
        labels = [line.get_label() for line in ax.get_lines()]
        assert "true loss at the fitted minimum" in labels
        assert any("autolr.csv" in source for source in drawn.sources)
        outside = figure_by_number(1)
        searches = outside.draw(full_index)
        labels = [line.get_label() for line in axes_by_gid(searches.figure)["fit:outside"].get_lines()]
        close_figure(searches.figure)
        assert "true loss at the fitted minimum" in labels  # the fit study measured the unclamped minimum
    finally:
        close_figure(drawn.figure)


def test_range_test_marks_chosen_lr(full_index):
    drawn = figure_by_number(8).draw(full_index)
    try:
        ax = axes_by_gid(drawn.figure)["range_test"]
        chosen = [line for line in ax.get_lines() if line.get_label().startswith("chosen max LR")]
        assert len(chosen) == 1
        assert chosen[0].get_xdata()[0] == pytest.approx(0.5)
        assert ax.get_xscale() == "log"
        assert drawn.sources == ["cifar10-resnet18_cifar/range_test-sgd/seed0/range_test.csv"]
    finally:
        close_figure(drawn.figure)


# ----------------------------------------------------------------------------------------------
# Missing data


def test_empty_results_skip_with_commands(tmp_path):
    (tmp_path / "results").mkdir()
    reports = build_figures(tmp_path / "results", tmp_path / "plots")
    assert [report.status for report in reports] == ["skipped"] * 20
    fashion = reports[17]
    assert "repro run dataset=fashion_mnist opt=sgd schedule=baseline" in fashion.commands
    assert "repro run dataset=fashion_mnist opt=sgd schedule=autolr" in fashion.commands
    plateau = reports[2]
    assert plateau.commands == ["repro run experiment=plateau_cifar10_constant",
                                "repro run experiment=plateau_cifar10_drop"]
    assert "repro noise-study dataset=mnist_5k opt=sgd" in reports[6].commands
    assert "repro range-test dataset=cifar10 opt=sgd" in reports[7].commands
    assert not list((tmp_path / "plots").glob("*.png"))
    table = format_table(reports)
    assert "0 written, 20 skipped, 0 failed" in table
    assert "repro run dataset=mnist_5k opt=adam schedule=autolr" in table
    assert "## Not drawn" in (tmp_path / "plots" / "README.md").read_text()


def test_partial_summary_marks_missing_panels(tmp_path, real_run):
    writer = ResultsWriter(tmp_path / "results", real_run)
    writer.pair("squad_dev_split", "minilm", "adamw", metrics=("em", "f1"), label="SQuAD dev halves (CPU scale)")
    drawn = figure_by_number(4).draw(ResultsIndex(tmp_path / "results"))
    try:
        gids = [ax.get_gid() for ax in drawn.figure.axes]
        assert gids.count("missing") == 3
        assert "c:em" in gids
        assert [panel.panel for panel in drawn.missing] == ["(a)", "(b)", "(d)"]
        assert "repro run dataset=imagenet opt=momentum schedule=baseline" in drawn.missing[0].commands
    finally:
        close_figure(drawn.figure)


def test_train_ppl_falls_back_to_loss(tmp_path, real_run):
    writer = ResultsWriter(tmp_path / "results", real_run)
    writer.pair("multi30k", "transformer_small", "adam", metrics=("valid_loss", "valid_ppl"))
    drawn = figure_by_number(13).draw(ResultsIndex(tmp_path / "results"))
    try:
        gids = axes_by_gid(drawn.figure)
        assert "train_loss/0" in gids
        assert "train_ppl/0" not in gids
        assert gids["valid_ppl/2"].get_xlabel() == "epoch"
    finally:
        close_figure(drawn.figure)


def test_missing_column_skips_figure(tmp_path, real_run):
    writer = ResultsWriter(tmp_path / "results", real_run)
    writer.pair("multi30k", "transformer_small", "adam", metrics=("valid_loss",))
    with pytest.raises(Missing, match="has no column valid_ppl"):
        figure_by_number(13).draw(ResultsIndex(tmp_path / "results"))


def test_unfinished_runs_not_drawn(tmp_path, real_run):
    writer = ResultsWriter(tmp_path / "results", real_run)
    writer.run("mnist_5k", "resnet18_mnist", "baseline", "sgd")
    writer.run("mnist_5k", "resnet18_mnist", "autolr", "sgd", status="running")
    with pytest.raises(Missing) as raised:
        figure_by_number(15).draw(ResultsIndex(tmp_path / "results"))
    assert "autolr-sgd/seed0 (running)" in raised.value.reason
    assert "repro run dataset=mnist_5k opt=sgd schedule=autolr" in raised.value.commands
    assert "repro run dataset=mnist_5k opt=sgd schedule=baseline" not in raised.value.commands


def test_skipped_figure_removes_stale_files(tmp_path):
    (tmp_path / "results").mkdir()
    stale = tmp_path / "plots" / "fig15_mnist_sgd.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    build_figures(tmp_path / "results", tmp_path / "plots", numbers={15})
    assert not stale.exists()


def test_missing_results_folder_raises(tmp_path):
    from repro.errors import DataError

    with pytest.raises(DataError, match="not found"):
        ResultsIndex(tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------
# Real run folders, the command and the helpers


def test_real_run_folder_indexed(real_run):
    index = ResultsIndex(real_run.parents[2])
    (folder,) = index.find("digits", "autolr", "sgd")
    assert (folder.model, folder.seed, folder.suffix, folder.status) == ("small_cnn", 0, None, "completed")
    assert folder.config_value("dataset.label") == "Digits (scikit-learn, CPU scale)"


def test_real_autolr_run_draws_range_test_and_fits(tmp_path, real_run):
    # The real digits run, filed as the MNIST stand-in, exercises the runner's own CSV rows.
    target = tmp_path / "results" / "mnist_5k-resnet18_mnist" / "autolr-sgd" / "seed0"
    shutil.copytree(real_run, target, ignore=shutil.ignore_patterns("checkpoint.pt"))
    index = ResultsIndex(tmp_path / "results")
    drawn = figure_by_number(8).draw(index)
    try:
        ax = axes_by_gid(drawn.figure)["range_test"]
        chosen = json.loads((real_run / "run.json").read_text())["range_test"]["suggested_max_lr"]
        marked = [line for line in ax.get_lines() if line.get_label().startswith("chosen max LR")]
        assert marked[0].get_xdata()[0] == pytest.approx(chosen)
    finally:
        close_figure(drawn.figure)
    fits = figure_by_number(6)  # no ImageNet/IWSLT/SQuAD data: skipped, not drawn from MNIST
    with pytest.raises(Missing):
        fits.draw(index)


def test_cli_writes_files_table_and_index(full_results, tmp_path, capsys):
    out = tmp_path / "plots"
    status = figures_command(ROOT, ["--results", str(full_results), "--out", str(out), "--only", "4,15-16"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "3 written, 0 skipped, 0 failed" in printed
    for stem in ("fig04_metric_and_lr", "fig15_mnist_sgd", "fig16_mnist_momentum"):
        assert (out / f"{stem}.png").stat().st_size > 10_000
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    index = (out / "README.md").read_text()
    assert "![Figure 15](fig15_mnist_sgd.png)" in index
    assert "mnist_5k-resnet18_mnist/autolr-sgd/seed1" in index


def test_cli_reports_failed_csv(tmp_path, real_run, capsys):
    writer = ResultsWriter(tmp_path / "results", real_run)
    writer.pair("mnist_5k", "resnet18_mnist", "sgd")
    broken = tmp_path / "results" / "mnist_5k-resnet18_mnist" / "autolr-sgd" / "seed0" / "epochs.csv"
    broken.write_text("epoch,step\n1,20\n")
    status = figures_command(ROOT, ["--results", str(tmp_path / "results"), "--out", str(tmp_path / "plots"),
                                    "--only", "15"])
    assert status == 1
    assert "failed" in capsys.readouterr().out


def test_parse_leaf_variants():
    assert parse_leaf("seed3") == (3, None, 1)
    assert parse_leaf("seed0-2") == (0, None, 2)
    assert parse_leaf("seed1-drop50") == (1, "drop50", 1)
    assert parse_leaf("seed1-drop50-3") == (1, "drop50", 3)
    assert parse_leaf("checkpoints") is None


def test_parse_numbers_ranges():
    assert parse_numbers("1,5,18-20") == {1, 5, 18, 19, 20}
    assert parse_numbers(None) is None


def curve(x, y) -> Curve:
    values = np.asarray(y, dtype=float)
    return Curve(np.asarray(x, dtype=float), values, values, values, 1)


def test_split_ranges_falling_curve():
    epochs = np.arange(1, 31)
    loss = 2.0 * np.exp(-epochs / 3) + 0.05
    top, bottom = split_ranges([curve(epochs, loss)], 2)
    late = loss[epochs >= 15.5]
    assert bottom[0] <= late.min()
    assert bottom[1] >= late.max()
    assert bottom[1] - bottom[0] < 0.1 * (top[1] - top[0])  # the late panel zooms in
    assert top[1] >= loss.max()


def test_split_ranges_rising_curve():
    epochs = np.arange(1, 31)
    accuracy = 95 - 60 * np.exp(-epochs / 3)
    top, middle, bottom = split_ranges([curve(epochs, accuracy)], 3)
    assert top[0] <= accuracy[epochs >= 15.5].min()  # late, high values on top
    assert top[0] > accuracy.min() + 0.5 * (accuracy.max() - accuracy.min())  # and zoomed in
    assert bottom[0] <= accuracy.min()
    assert top[1] > middle[1] > bottom[1]


def test_split_ranges_flat_curve():
    ranges = split_ranges([curve(np.arange(5), [1.0] * 5)], 2)
    assert all(low < high for low, high in ranges)
