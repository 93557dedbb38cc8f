"""The AutoLR paper's settings, the data sets that may stand in for them, and how figures find their runs.

A figure of a paper setting is drawn from that setting's runs or from its declared CPU-scale
stand-in, never from another setting. Titles name the data set used, and the epochs run when
they are fewer than the data set's recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import ResultsIndex, RunFolder
from .style import MODEL_LABELS, OPT_LABELS

# Subcommand that writes each kind of folder.
STUDY_COMMANDS = {"range_test": "range-test", "fit_study": "fit-study", "noise_study": "noise-study"}


@dataclass(frozen=True)
class Source:
    """A data set that can supply a setting's runs: the paper-scale data set or a CPU-scale stand-in."""

    dataset: str
    model: str | None  # None: whichever model folder exists (names not fixed yet for NLP tasks)
    scale: str  # "paper scale" or a short description of the stand-in
    overrides: tuple[str, ...] = ()  # extra command-line overrides its commands need


@dataclass(frozen=True)
class Setting:
    key: str
    label: str  # the setting as the AutoLR paper names it, e.g. "CIFAR-10 / ResNet-18"
    sources: tuple[Source, ...]
    opt: str = "sgd"  # the optimizer a study of this setting is run with in suggested commands

    def prefer(self, opts: tuple[str, ...]) -> tuple[str, ...]:
        """`opts` with this setting's own optimizer first."""
        return (self.opt, *[opt for opt in opts if opt != self.opt]) if self.opt in opts else opts


@dataclass(frozen=True)
class Need:
    """One group of folders a figure needs: a schedule's runs or a study's output."""

    group: str  # baseline, autolr, constant, range_test, fit_study, noise_study
    suffix_prefix: str | None = None  # variant folders such as seed0-drop50 ("drop"); None = plain seeds
    experiment: str | None = None  # conf/experiment file that produces the runs, for one-source settings

    def command(self, source: Source, opt: str) -> str:
        if self.experiment:
            return f"repro run experiment={self.experiment}"
        if self.group in STUDY_COMMANDS:
            words = ["repro", STUDY_COMMANDS[self.group], f"dataset={source.dataset}", f"opt={opt}"]
        else:
            words = ["repro", "run", f"dataset={source.dataset}", f"opt={opt}", f"schedule={self.group}"]
        return " ".join([*words, *source.overrides])


@dataclass
class Found:
    """The runs found for a setting: one list of seeds per need, all of one data set, model and opt."""

    setting: Setting
    source: Source
    model: str
    opt: str
    runs: dict[str, list[RunFolder]] = field(default_factory=dict)

    def first(self) -> RunFolder:
        return next(iter(self.runs.values()))[0]

    def folders(self) -> list[RunFolder]:
        return [folder for folders in self.runs.values() for folder in folders]


class Missing(Exception):
    """Raised when a figure or panel lacks runs. `commands` would produce them."""

    def __init__(self, reason: str, commands: list[str]):
        super().__init__(reason)
        self.reason = reason
        self.commands = commands


def find_runs(index: ResultsIndex, setting: Setting, opts: tuple[str, ...], needs: dict[str, Need]) -> Found:
    """Return the first source, model and optimizer (in the given orders) that has every need.

    Raises Missing otherwise, with the commands for the paper-scale data set and each stand-in.
    """
    for source in setting.sources:
        models = [source.model] if source.model else index.models(source.dataset)
        for model in models:
            for opt in opts:
                runs = {}
                for name, need in needs.items():
                    folders = index.find(source.dataset, need.group, opt, model=model,
                                         suffix_prefix=need.suffix_prefix)
                    if not folders:
                        break
                    runs[name] = folders
                else:
                    return Found(setting, source, model, opt, runs)
    raise missing_runs(index, setting, opts, needs)


def find_any(index: ResultsIndex, setting: Setting, opts: tuple[str, ...], needs: tuple[Need, ...]) -> Found:
    """Return the first source and need (in the given orders) with completed runs, under any opt.

    For figures that can use either a study or the AutoLR runs' own records.
    """
    opts = setting.prefer(opts)
    for source in setting.sources:
        for need in needs:
            for opt in opts:
                try:
                    return find_runs(index, Setting(setting.key, setting.label, (source,), setting.opt), (opt,),
                                     {need.group: need})
                except Missing:
                    continue
    raise missing_runs(index, setting, opts, {need.group: need for need in needs}, alternatives=True)


def missing_runs(index: ResultsIndex, setting: Setting, opts: tuple[str, ...], needs: dict[str, Need],
                 alternatives: bool = False) -> Missing:
    """Describe what `needs` lacks for `setting`, with one command per missing group and source.

    With `alternatives` (any one need suffices) only the first need gets commands.
    """
    groups = " or ".join if alternatives else " and ".join
    names = [need.group + (f" ({need.suffix_prefix}*)" if need.suffix_prefix else "") for need in needs.values()]
    expected = groups(list(dict.fromkeys(names)))
    reason = f"{setting.label}: no completed {expected} runs with opt {'/'.join(opts)}"
    datasets = dict.fromkeys(source.dataset for source in setting.sources)
    unfinished = [folder for dataset in datasets for need in needs.values() for opt in opts
                  for folder in index.unfinished(dataset, need.group, opt)]
    if unfinished:
        listed = ", ".join(f"{folder.relative(index.root)} ({folder.status})" for folder in unfinished[:3])
        reason += f"; not completed: {listed}"
    commands = []
    for source in setting.sources:
        for need in list(needs.values())[:1] if alternatives else needs.values():
            if alternatives or not index.find(source.dataset, need.group, opts[0], model=source.model,
                                              suffix_prefix=need.suffix_prefix):
                commands.append(need.command(source, opts[0]))
    return Missing(reason, commands)


# ----------------------------------------------------------------------------------------------
# Titles


def describe_data(folders: list[RunFolder]) -> str:
    """Title text for the data behind `folders`, e.g. "ResNet-18 on MNIST, 5k subset (CPU scale)".

    A paper-scale data set trained for fewer epochs than its recipe is labelled with the epochs
    run and "CPU scale"; a stand-in cut short gets "N of M epochs".
    """
    first = folders[0]
    dataset = first.config_value("dataset.label") or first.dataset
    model = MODEL_LABELS.get(first.model, first.model)
    text = dataset if model in dataset else f"{model} on {dataset}"
    epochs = sorted({int(folder.config_value("trainer.epochs")) for folder in folders
                     if folder.config_value("trainer.epochs") is not None})
    recipe = first.config_value("dataset.recipe.epochs")
    if not epochs or recipe is None or max(epochs) >= int(recipe):
        return text
    run_epochs = str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    if first.config_value("dataset.scale") == "paper":
        return f"{text}, full data ({run_epochs} epochs, CPU scale)"
    return f"{text} ({run_epochs} of {recipe} epochs)"


def opt_label(opt: str) -> str:
    return OPT_LABELS.get(opt, opt)


# ----------------------------------------------------------------------------------------------
# The settings

PAPER = "paper scale"
FASHION_OFFLINE = ("dataset.root=/usr/share/datasets/fashion-mnist", "dataset.download=false")

CIFAR10 = Setting("cifar10", "CIFAR-10 / ResNet-18", (Source("cifar10", "resnet18_cifar", PAPER),))
# Figures 2 and 3 (the plateau study) also accept the CPU-scale analogue of experiment=plateau_mnist_5k_*.
CIFAR10_PLATEAU = Setting("cifar10", "CIFAR-10 / ResNet-18", (
    Source("cifar10", "resnet18_cifar", PAPER),
    Source("mnist_5k", "resnet18_mnist", "CPU scale: plateau analogue on the 5,000-image MNIST subset"),
))
IMAGENET = Setting("imagenet", "ImageNet / ResNet-50", (Source("imagenet", "resnet50", PAPER),))
MNIST = Setting("mnist", "MNIST / ResNet-18", (
    Source("mnist", "resnet18_mnist", PAPER),
    Source("mnist_5k", "resnet18_mnist", "CPU scale: 5,000-image MNIST subset"),
))
FASHION_MNIST = Setting("fashion_mnist", "Fashion-MNIST / ResNet-18", (
    Source("fashion_mnist", "resnet18_mnist", PAPER),
    # The same data set offline (Debian package dataset-fashion-mnist), run with fewer epochs if needed.
    Source("fashion_mnist", "resnet18_mnist", "CPU scale: full data offline", FASHION_OFFLINE),
))
IWSLT = Setting("iwslt14", "IWSLT'14 De-En / Transformer", (
    Source("iwslt14", "transformer_iwslt", PAPER),
    Source("multi30k", "transformer_small", "CPU scale: Multi30k De-En, small Transformer"),
), opt="adam")
SQUAD = Setting("squad", "SQuAD v1.1 / BERT", (
    Source("squad", "bert_base", PAPER),
    Source("squad_dev_split", "minilm", "CPU scale: SQuAD dev halves, MiniLM"),
), opt="adam")

# Settings in the order an illustration (figures 1 and 8) takes the first with data.
ALL_SETTINGS = (CIFAR10, IMAGENET, MNIST, FASHION_MNIST, IWSLT, SQUAD)
