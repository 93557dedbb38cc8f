"""The 20 figures of the AutoLR paper: one entry each, naming the runs it needs, its panels and its layout.

To add a figure, add an entry to FIGURES. To add a setting, add it to settings.py and use it here.
"""

from __future__ import annotations

from .base import FigureEntry
from .curves import CurvesFigure, Line, SummaryPanel, SummaryFigure
from .fits import FitFigure, FitPanel
from .settings import ALL_SETTINGS, CIFAR10, CIFAR10_PLATEAU, FASHION_MNIST, IMAGENET, IWSLT, MNIST, SQUAD, Need
from .studies import NoiseFigure, NoisePanel, RangeTestFigure

# The plateau study: plain SGD at the recipe's constant LR, and the same run with the LR divided
# by 10 at one epoch E (the folder seed<N>-drop<E>; E is 50 in conf/experiment/plateau_cifar10_drop.yaml).
CONSTANT = Line("constant", Need("constant", experiment="plateau_cifar10_constant"))
DROP = Line("drop", Need("baseline", suffix_prefix="drop", experiment="plateau_cifar10_drop"))

LOSS = ("train_loss",)
TOP1 = ("test_acc",)
TOP5 = ("test_top5",)
# Translation tasks may log training perplexity. Where they do not, the training loss is drawn instead.
TRAIN_PPL = ("train_ppl", "train_loss")
VALID_PPL = ("valid_ppl",)
EXACT_MATCH = ("em",)
# The AutoLR paper fine-tunes BERT with Adam. AdamW runs (the usual BERT recipe) are accepted too.
BERT_OPTS = ("adam", "adamw")

PAIR_CAPTION = "baseline (orange) vs AutoLR (blue); LR dashed; split y-axes"

FIGURES: tuple[FigureEntry, ...] = (
    FitFigure(1, "fig01_quadratic_fit_far_minimum",
              "a quadratic fit whose minimum lies far from the sampled LRs",
              (FitPanel("", ALL_SETTINGS, "outside"),)),
    CurvesFigure(2, "fig02_constant_lr_plateau", "SGD at a constant LR: the training loss stagnates",
                 CIFAR10_PLATEAU, ("sgd",), (LOSS,), parts=1, lines=(CONSTANT,), show_lr=False),
    CurvesFigure(3, "fig03_constant_vs_drop", "constant LR vs the same run with a tenfold LR drop; split y-axes",
                 CIFAR10_PLATEAU, ("sgd",), (LOSS,), parts=2, lines=(CONSTANT, DROP)),
    SummaryFigure(4, "fig04_metric_and_lr",
                  "generalisation metric (solid, left) and LR (dashed, right), baseline vs AutoLR", (
                      SummaryPanel("a", IMAGENET, ("momentum",), TOP5),
                      SummaryPanel("b", CIFAR10, ("momentum", "sgd", "adam"), TOP1),
                      SummaryPanel("c", SQUAD, BERT_OPTS, EXACT_MATCH),
                      SummaryPanel("d", IWSLT, ("adam",), VALID_PPL),
                  )),
    FitFigure(5, "fig05_quadratic_fits_cifar10", "quadratic fits on CIFAR-10 / ResNet-18", (
        FitPanel("a", (CIFAR10,), "inside"),
        FitPanel("b", (CIFAR10,), "outside"),
    )),
    FitFigure(6, "fig06_quadratic_fits_imagenet_iwslt_squad", "quadratic fits on ImageNet, IWSLT and SQuAD", (
        FitPanel("a", (IMAGENET,), "any"),
        FitPanel("b", (IWSLT,), "any"),
        FitPanel("c", (SQUAD,), "any"),
    )),
    NoiseFigure(7, "fig07_loss_noise_vs_superbatch", "noise of the loss estimate vs superbatch size", (
        NoisePanel("a", CIFAR10),
        NoisePanel("b", MNIST),
    )),
    RangeTestFigure(8, "fig08_lr_range_test",
                    "LR range test: max LR chosen before the loss minimum, where the loss still falls",
                    ALL_SETTINGS),
    CurvesFigure(9, "fig09_imagenet_momentum", PAIR_CAPTION, IMAGENET, ("momentum",), (LOSS, TOP1, TOP5), parts=3),
    CurvesFigure(10, "fig10_cifar10_sgd", PAIR_CAPTION, CIFAR10, ("sgd",), (LOSS, TOP1), parts=2),
    CurvesFigure(11, "fig11_cifar10_momentum", PAIR_CAPTION, CIFAR10, ("momentum",), (LOSS, TOP1), parts=3),
    CurvesFigure(12, "fig12_cifar10_adam", PAIR_CAPTION, CIFAR10, ("adam",), (LOSS, TOP1), parts=2),
    CurvesFigure(13, "fig13_iwslt_adam", PAIR_CAPTION, IWSLT, ("adam",), (TRAIN_PPL, VALID_PPL), parts=3),
    CurvesFigure(14, "fig14_squad_adam", PAIR_CAPTION, SQUAD, BERT_OPTS, (LOSS, EXACT_MATCH), parts=2),
    CurvesFigure(15, "fig15_mnist_sgd", PAIR_CAPTION, MNIST, ("sgd",), (LOSS, TOP1), parts=2),
    CurvesFigure(16, "fig16_mnist_momentum", PAIR_CAPTION, MNIST, ("momentum",), (LOSS, TOP1), parts=2),
    CurvesFigure(17, "fig17_mnist_adam", PAIR_CAPTION, MNIST, ("adam",), (LOSS, TOP1), parts=2),
    CurvesFigure(18, "fig18_fashion_mnist_sgd", PAIR_CAPTION, FASHION_MNIST, ("sgd",), (LOSS, TOP1), parts=2),
    CurvesFigure(19, "fig19_fashion_mnist_momentum", PAIR_CAPTION, FASHION_MNIST, ("momentum",), (LOSS, TOP1), parts=2),
    CurvesFigure(20, "fig20_fashion_mnist_adam", PAIR_CAPTION, FASHION_MNIST, ("adam",), (LOSS, TOP1), parts=2),
)


def figure_by_number(number: int) -> FigureEntry:
    for entry in FIGURES:
        if entry.number == number:
            return entry
    raise KeyError(f"no figure {number}; the registry has figures "
                   f"{', '.join(str(entry.number) for entry in FIGURES)}")
