"""`repro compare`: AutoLR and its peers on one setting, over a fixed list of seeds.

A method is a run folder's middle name, `<schedule>-<opt>` (autolr-momentum, cosine-momentum,
constant-prodigy). For each method and seed the command reads the run under
results/<dataset>-<model>/<method>/seed<N>/, and trains it first when it is missing or unfinished
(unless --read-only). It then writes, under results/<dataset>-<model>/comparison[-<suffix>]/:

- comparison.csv: one row per method (COMPARISON_COLUMNS), comparison_seeds.csv: one per run;
- comparison.md: the same as a markdown table, with the range-test peer check;
- comparison.png/.pdf: metric and LR curves of every method, averaged over seeds;
- range_test_peer.csv and range_test_peer_curves.csv: our range test next to torch-lr-finder's.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError, DivergedError
from ..results.run_dir import run_folder_name
from . import range_peer
from .metrics import metric_direction
from .report import MethodRuns, load_run, summarize, write_figure, write_markdown

log = logging.getLogger(__name__)

LR_FREE_METHODS = ("constant-schedulefree_sgd", "constant-schedulefree_adamw", "constant-prodigy",
                   "constant-dadapt_sgd", "constant-dadapt_adam")
SCHEDULE_PEERS = ("baseline", "autolr", "plateau", "cosine", "onecycle", "knee")
DEFAULT_SEEDS = (0, 1, 2)
# Overrides that compare sets itself, per method and seed.
OWN_KEYS = ("opt", "schedule", "seed", "resume")


def default_methods(opt: str) -> list[str]:
    """Return every peer schedule with `opt`, then every LR-free optimizer under a constant multiplier."""
    return [f"{schedule}-{opt}" for schedule in SCHEDULE_PEERS] + list(LR_FREE_METHODS)


def parse_arguments(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="repro compare",
        description="Compare AutoLR with peer schedules and LR-free optimizers on one setting. "
                    "Other arguments are `repro run` overrides shared by every run (dataset=..., trainer.*).")
    parser.add_argument("--opt", default="momentum",
                        help="optimizer of the default schedule methods (default momentum)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated <schedule>-<opt> list (default: baseline, autolr, plateau, cosine, "
                             "onecycle, knee with --opt, and constant-<each LR-free optimizer>)")
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--baseline", default=None,
                        help="method whose final metric sets the target (default baseline-<opt>)")
    parser.add_argument("--metric", default=None,
                        help="epochs.csv column to compare (default: test_acc, em, test_bleu or valid_ppl, "
                             "whichever the task has)")
    parser.add_argument("--read-only", action="store_true", help="only read existing runs; train nothing")
    parser.add_argument("--no-range-test", action="store_true", help="skip the range-test peer check")
    parser.add_argument("overrides", nargs="*", help="repro run overrides, e.g. dataset=mnist_5k trainer.threads=1")
    parsed = parser.parse_intermixed_args(args)

    try:
        parsed.seeds = [int(seed) for seed in parsed.seeds.split(",") if seed != ""]
    except ValueError:
        raise ConfigError(f"invalid --seeds {parsed.seeds!r}; expected comma-separated integers, e.g. 0,1,2") from None
    if not parsed.seeds or min(parsed.seeds) < 0:
        raise ConfigError(f"invalid --seeds {parsed.seeds!r}; expected one or more integers >= 0")
    parsed.methods = parsed.methods.split(",") if parsed.methods else default_methods(parsed.opt)
    for method in parsed.methods:
        if "-" not in method:
            raise ConfigError(f"invalid method {method!r}; expected <schedule>-<opt>, e.g. cosine-momentum")
    parsed.baseline = parsed.baseline or f"baseline-{parsed.opt}"
    if parsed.baseline not in parsed.methods:
        raise ConfigError(f"--baseline {parsed.baseline} is not among the methods; add it to --methods or pass "
                          f"--baseline <one of {','.join(parsed.methods)}>")
    for override in parsed.overrides:
        key = override.partition("=")[0].lstrip("+~")
        if key in OWN_KEYS:
            raise ConfigError(f"override {override!r} is set by repro compare for each run; choose methods with "
                              "--methods <schedule>-<opt>,... and seeds with --seeds")
    return parsed


def compose(root: Path, overrides: list[str]) -> DictConfig:
    """Compose conf/config.yaml with `overrides`, as `repro run` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(root))
    try:
        with initialize_config_dir(str(root / "conf"), version_base="1.3", job_name="compare"):
            return hydra_compose("config", overrides=overrides)
    except HydraException as error:
        raise ConfigError(f"invalid overrides {' '.join(overrides)}: {error}") from error


def method_overrides(method: str, seed: int) -> list[str]:
    schedule, opt = method.split("-", 1)
    return [f"schedule={schedule}", f"opt={opt}", f"seed={seed}"]


def run_status(folder: Path) -> str | None:
    """Return the status in `folder`/run.json, or None when there is no run there."""
    import json

    path = folder / "run.json"
    return json.loads(path.read_text()).get("status") if path.is_file() else None


def ensure_run(root: Path, cfg: DictConfig, overrides: list[str], folder: Path) -> None:
    """Train the run in `folder`, resuming it when it exists unfinished. A diverged run is final."""
    from ..runner import run
    from ..validate import validate_config

    status = run_status(folder)
    if status in ("completed", "diverged"):
        return
    if status == "running":
        # A run killed without a chance to record its end also reads "running".
        log.warning("compare: %s is marked running; resuming it, so make sure no other process trains it", folder)
    if status is not None:
        overrides = [*overrides, f"resume={folder}"]
        cfg = compose(root, overrides)
    validate_config(cfg)
    log.info("compare: training %s (%s)", folder, "resuming" if status else "new run")
    try:
        run(cfg, overrides)
    except DivergedError as error:
        log.warning("compare: %s diverged: %s", folder, error)


def compare_job(root: Path, options: argparse.Namespace) -> Path:
    """Read or train every (method, seed) run, then write the comparison files; return their folder."""
    plans = []
    for seed in options.seeds:
        for method in options.methods:
            overrides = [*options.overrides, *method_overrides(method, seed)]
            cfg = compose(root, overrides)
            folder = Path(cfg.paths.results_dir) / run_folder_name(cfg)
            plans.append((method, seed, overrides, cfg, folder))

    first_cfg = plans[0][3]
    setting = Path(first_cfg.paths.results_dir) / f"{first_cfg.dataset.name}-{first_cfg.model.name}"
    out = setting / ("comparison" + (f"-{first_cfg.suffix}" if first_cfg.suffix else ""))

    if not options.read_only:
        from ..validate import validate_config

        for _, _, _, cfg, _ in plans:  # reject a bad override before hours of training
            validate_config(cfg)
        for method, seed, overrides, cfg, folder in plans:
            ensure_run(root, cfg, overrides, folder)

    runs = {method: MethodRuns(method) for method in options.methods}
    for method, seed, _, _, folder in plans:
        runs[method].add(load_run(folder, seed))
    metric = options.metric or _pick_metric(runs)
    direction = metric_direction(metric)
    if direction is None:
        raise ConfigError(f"--metric {metric} has no known direction (a name ending in _acc, _loss, _ppl, ...)")

    rows, seed_rows, target = summarize(runs, options.baseline, metric, direction)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "comparison.csv", rows)
    _write_csv(out / "comparison_seeds.csv", seed_rows)

    peer_rows = []
    if not options.no_range_test:
        peer_rows = _range_test_peer(root, options, out)
    write_markdown(out / "comparison.md", first_cfg, options, rows, metric, direction, target, peer_rows)
    write_figure(out, runs, metric, options.baseline)
    print(f"comparison of {len(options.methods)} methods x {len(options.seeds)} seeds on {metric}: {out}")
    return out


def _pick_metric(runs: dict[str, MethodRuns]) -> str:
    from .metrics import default_metric

    for method_runs in runs.values():
        for run in method_runs.runs:
            if run.epochs is not None:
                metric = default_metric(run.epochs.columns)
                if metric:
                    return metric
    raise ConfigError("no run has an epochs.csv with a known metric to compare; train the runs first or pass --metric")


def _label_lr_finder_artists(ax) -> None:
    """Label what LRFinder.plot drew, so the legend distinguishes the two tools.

    The package leaves its loss curve unlabelled and labels its marker only "steepest gradient".
    """
    for line in ax.lines:
        line.set_label("torch-lr-finder")
    for marker in ax.collections:
        marker.set_label("torch-lr-finder suggestion")


def _range_test_peer(root: Path, options: argparse.Namespace, out: Path) -> list[dict]:
    """Run both range tests for the first seed with --opt, write their CSVs and return the summary rows."""
    from ..figures.style import new_figure, save_figure

    cfg = compose(root, [*options.overrides, "schedule=onecycle", f"opt={options.opt}", f"seed={options.seeds[0]}"])
    sweep = range_peer.range_test_config(cfg)
    ours, our_curve = range_peer.ours(cfg, sweep)
    figure = new_figure(5, 3.5)
    ax = figure.add_subplot()
    theirs, their_curve = range_peer.lr_finder(cfg, sweep, ax=ax)
    _label_lr_finder_artists(ax)
    (our_line,) = ax.plot([point["lr"] for point in our_curve], [point["loss"] for point in our_curve],
                          label="repro (smoothed)")
    if math.isfinite(ours["suggested_max_lr"]):
        ax.axvline(ours["suggested_max_lr"], color=our_line.get_color(), linestyle="--", label="repro suggestion")
    ax.set_title(f"LR range test, {cfg.dataset.name} / {cfg.opt.name}")
    ax.legend(fontsize=7)
    save_figure(figure, out, "range_test_peer")
    rows = [ours, theirs]
    _write_csv(out / "range_test_peer.csv", rows, range_peer.PEER_COLUMNS)
    _write_csv(out / "range_test_peer_curves.csv", our_curve + their_curve, range_peer.CURVE_COLUMNS)
    for row in rows:
        log.info("range test %s: suggested max LR %.4g (%s)", row["tool"], row["suggested_max_lr"], row["rule"])
    return rows


def _write_csv(path: Path, rows: list[dict], columns=None) -> None:
    columns = list(columns or (rows[0].keys() if rows else []))
    partial = path.with_suffix(path.suffix + ".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)


def compare_command(root: Path, args: list[str]) -> int:
    """Entry point of `repro compare` (see the module docstring)."""
    options = parse_arguments(args)
    compare_job(root, options)
    return 0
