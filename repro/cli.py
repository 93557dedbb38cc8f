"""Command line: `repro run [hydra overrides]` (and `python -m repro run ...`)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from .errors import ReproError

USAGE = """usage: repro COMMAND [OVERRIDES...]

Commands:
  run           train one paper setting under a baseline schedule or AutoLR; results go to results/
  range-test    LR range test on its own (range_test.csv and the suggested max LR)
  fit-study     quadratic fits of loss vs LR at chosen points of training (fit_study.csv)
  noise-study   spread of the superbatch loss estimate vs its size (noise_study.csv)
  compare       AutoLR against peer schedules and LR-free optimizers on one setting
  figures       redraw the paper's figures from results CSVs (repro figures --help)

Examples:
  repro run                                      digits, small CNN, AutoLR (about a minute on a CPU)
  repro run dataset=mnist_5k opt=momentum schedule=baseline
  repro run dataset=cifar10 opt=sgd              the paper's CIFAR-10 / ResNet-18 / SGD baseline
  repro run -m opt=sgd,momentum,adam schedule=baseline,autolr
  repro run <same overrides> resume=results/<run folder>
  repro run --cfg job                            print the composed config and exit
Config groups: {groups}
"""

# Config groups whose choice is checked before Hydra starts, to list valid values in one line.
CHECKED_GROUPS = ("dataset", "model", "opt", "schedule", "trainer", "paths")


def project_root() -> Path:
    """Return the checkout that contains conf/; REPRO_ROOT overrides it for an installed copy."""
    root = Path(os.environ.get("REPRO_ROOT", Path(__file__).resolve().parents[1]))
    if not (root / "conf" / "config.yaml").is_file():
        raise ReproError(f"conf/config.yaml not found under {root}; install with `pip install -e .` from the "
                         "checkout or set REPRO_ROOT to the checkout")
    return root


def group_choices(root: Path, group: str) -> list[str]:
    return sorted(path.stem for path in (root / "conf" / group).glob("*.yaml"))


def check_group_overrides(root: Path, overrides: list[str]) -> None:
    """Reject `group=choice` overrides that name no config file, listing the valid choices."""
    for override in overrides:
        key, _, values = override.partition("=")
        key = key.lstrip("+~")
        if key not in CHECKED_GROUPS or not values:
            continue
        choices = group_choices(root, key)
        for value in values.split(","):  # multirun sweeps: opt=sgd,adam
            if value not in choices:
                raise ReproError(f"unknown {key} {value!r}; choose one of: {', '.join(choices)} (e.g. {key}={choices[0]})")


def check_recipe_has_optimizer(root: Path, overrides: list[str]) -> None:
    """Reject an optimizer whose LR the chosen dataset's recipe does not define (e.g. SGD for SQuAD)."""
    import re

    from omegaconf import OmegaConf

    chosen = dict(override.partition("=")[::2] for override in overrides if "=" in override)
    if "," in chosen.get("dataset", "") + chosen.get("opt", "") or {"opt.lr", "opt.weight_decay"} <= set(chosen):
        return  # sweeps are checked point by point by Hydra; explicit values need no recipe
    dataset = chosen.get("dataset", "digits")
    dataset_file = root / "conf" / "dataset" / f"{dataset}.yaml"
    text = dataset_file.read_text()
    default_opt = re.search(r"override /opt: (\w+)", text)
    opt = chosen.get("opt", default_opt.group(1) if default_opt else "sgd")
    opt_file = root / "conf" / "opt" / f"{opt}.yaml"
    if not opt_file.is_file() or f"${{dataset.recipe.{opt}.lr}}" not in opt_file.read_text():
        return  # this optimizer falls back to its own default LR
    recipe = OmegaConf.load(dataset_file).dataset.get("recipe", {})
    if opt not in recipe:
        available = ", ".join(name for name in recipe if (root / "conf" / "opt" / f"{name}.yaml").is_file())
        raise ReproError(f"dataset {dataset} has no recipe for opt={opt}; choose one of: {available}, "
                         "or set opt.lr=... opt.weight_decay=... yourself")


def _configure_logging() -> None:
    root = logging.getLogger("repro")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def hydra_command(root: Path, args: list[str], job: Callable[[DictConfig, list[str]], object],
                  name: str = "run") -> int:
    """Compose conf/config.yaml with `args` as Hydra overrides (with -m sweeps) and call `job`.

    `job(cfg, overrides)` does the work; its return value is printed as `results: ...` when not
    None. A ReproError becomes a one-line message and exit status 2; in a multirun the other
    sweep points still run.
    """
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(root))
    failures: list[str] = []

    @hydra.main(config_path=str(root / "conf"), config_name="config", version_base="1.3")
    def hydra_entry(cfg) -> None:
        hydra_cfg = HydraConfig.get()
        try:
            output = job(cfg, list(hydra_cfg.overrides.task))
            if output is not None:
                print(f"results: {output}")
        except ReproError as error:
            print(f"error: {error}", file=sys.stderr)
            failures.append(str(error))
            if hydra_cfg.mode == RunMode.RUN:
                raise SystemExit(2)
        except KeyboardInterrupt:
            raise SystemExit(130)

    sys.argv = [f"repro {name}", *args]
    hydra_entry()
    return 2 if failures else 0


def run_command(root: Path, args: list[str]) -> int:
    from .runner import run

    return hydra_command(root, args, run, "run")


# Subcommand -> (module, function(root, args) -> exit status), imported only when used.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("repro.cli", "run_command"),
    "range-test": ("repro.studies.cli", "range_test_command"),
    "fit-study": ("repro.studies.cli", "fit_study_command"),
    "noise-study": ("repro.studies.cli", "noise_study_command"),
    "figures": ("repro.figures.cli", "figures_command"),
    "compare": ("repro.peers.compare", "compare_command"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        root = project_root()
        if not argv or argv[0] in ("-h", "--help", "help"):
            print(USAGE.format(groups=", ".join(f"{g} ({'/'.join(group_choices(root, g))})"
                                                for g in ("dataset", "opt", "schedule"))))
            return 0
        command, args = argv[0], argv[1:]
        if command not in COMMANDS:
            raise ReproError(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)} "
                             "(see `repro --help`)")
        check_group_overrides(root, args)
        if command != "figures":
            check_recipe_has_optimizer(root, args)
        _configure_logging()
        module, function = COMMANDS[command]
        return getattr(importlib.import_module(module), function)(root, args)
    except ReproError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
