"""`repro range-test`, `repro fit-study` and `repro noise-study`: the same Hydra overrides as `repro run`.

Each command composes conf/config.yaml plus the `study` group (conf/study/default.yaml), so
`dataset=...`, `model=...`, `opt=...`, `schedule=...`, `trainer.*` and `study.*` overrides all
apply. Results go to results/<dataset>-<model>/<study>-<opt>/seed<N>[-<suffix>]/.
"""

from __future__ import annotations

from pathlib import Path

from ..cli import hydra_command
from ..errors import ConfigError
from .record import STUDY_GROUP_OVERRIDE


def with_study_group(root: Path, args: list[str]) -> list[str]:
    """Add the `study` group unless the arguments choose one, turning `study=NAME` into `+study=NAME`."""
    choices = sorted(path.stem for path in (root / "conf" / "study").glob("*.yaml"))
    result, chosen = [], False
    for arg in args:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "study":
            if value not in choices:
                raise ConfigError(f"unknown study {value!r}; choose one of: {', '.join(choices)}")
            result.append(f"+study={value}")
            chosen = True
        else:
            result.append(arg)
    return result if chosen else [*result, STUDY_GROUP_OVERRIDE]


def range_test_command(root: Path, args: list[str]) -> int:
    from .jobs import range_test_job

    return hydra_command(root, with_study_group(root, args), range_test_job, "range-test")


def fit_study_command(root: Path, args: list[str]) -> int:
    from .jobs import fit_study_job

    return hydra_command(root, with_study_group(root, args), fit_study_job, "fit-study")


def noise_study_command(root: Path, args: list[str]) -> int:
    from .jobs import noise_study_job

    return hydra_command(root, with_study_group(root, args), noise_study_job, "noise-study")
