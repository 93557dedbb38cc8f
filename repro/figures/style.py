"""Colours, markers and file output shared by every figure. Matplotlib runs headless (Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display, even when one is available: figures are files only

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402

# Training curves: the AutoLR paper draws the hand-tuned baseline orange and AutoLR blue.
SCHEDULE_COLOURS = {"baseline": "tab:orange", "autolr": "tab:blue", "constant": "tab:orange", "drop": "tab:blue"}
SCHEDULE_LABELS = {"baseline": "baseline", "autolr": "AutoLR"}
LR_LINESTYLE = "--"
SPREAD_ALPHA = 0.25  # shaded band of mean +- one standard deviation over seeds

# Quadratic-fit figures: fit samples, held-out test samples, fitted curve, its minimum and the
# loss measured there.
FIT_SAMPLE = {"marker": "^", "color": "tab:orange", "linestyle": "none", "markersize": 8}
TEST_SAMPLE = {"marker": "^", "color": "tab:green", "linestyle": "none", "markersize": 8}
FITTED_CURVE = {"color": "tab:blue", "linewidth": 1.5}
FITTED_MINIMUM = {"marker": "o", "color": "tab:red", "linestyle": "none", "markersize": 8}
TRUE_LOSS = {"marker": "^", "color": "tab:purple", "linestyle": "none", "markersize": 9}

FORMATS = ("png", "pdf")
DPI = 150

# Models whose folder names are not readable in a title.
MODEL_LABELS = {"resnet18_cifar": "ResNet-18", "resnet18_mnist": "ResNet-18", "resnet50": "ResNet-50",
                "small_cnn": "small CNN", "transformer_iwslt": "Transformer", "transformer_small": "small Transformer",
                "bert_base": "BERT-base", "minilm": "MiniLM"}
OPT_LABELS = {"sgd": "SGD", "momentum": "Momentum", "adam": "Adam", "adamw": "AdamW"}


def new_figure(width: float, height: float) -> Figure:
    return plt.figure(figsize=(width, height))


def save_figure(figure: Figure, out_dir: Path, stem: str, formats=FORMATS) -> list[Path]:
    """Write `figure` as <out_dir>/<stem>.<format> for each format and close it; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for extension in formats:
        path = out_dir / f"{stem}.{extension}"
        # A fixed creation date keeps PDFs byte-identical between runs of `make figures`.
        metadata = {"CreationDate": None} if extension == "pdf" else {"Software": None}
        figure.savefig(path, dpi=DPI, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(figure)
    return paths


def close_figure(figure: Figure) -> None:
    plt.close(figure)


def mark_missing(ax, text: str) -> None:
    """Turn `ax` into a visible placeholder for a panel whose runs do not exist."""
    ax.set_gid("missing")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linestyle(":")
        spine.set_color("0.6")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=7, color="0.35")


def use_log_scale(values) -> bool:
    """True when the positive values span at least a factor of 10 (a decade)."""
    positive = [value for value in values if value > 0]
    return bool(positive) and max(positive) >= 10 * min(positive)
