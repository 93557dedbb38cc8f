"""Tiny data sets written in the real on-disk formats of CIFAR-10, MNIST and ImageNet."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def write_cifar10(root: Path, per_batch: int = 4, seed: int = 0) -> Path:
    """cifar-10-batches-py/ with five training batches, a test batch and batches.meta (pickles)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        entry = {"batch_label": name, "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist(),
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck"], "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def _idx_images(images: np.ndarray) -> bytes:
    return struct.pack(">IIII", 0x00000803, *images.shape) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, labels.size) + labels.astype(np.uint8).tobytes()


def idx_files(train: int = 8, test: int = 4, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        IDX_STEMS[0]: _idx_images(rng.integers(0, 256, (train, 28, 28))),
        IDX_STEMS[1]: _idx_labels(rng.integers(0, 10, train)),
        IDX_STEMS[2]: _idx_images(rng.integers(0, 256, (test, 28, 28))),
        IDX_STEMS[3]: _idx_labels(rng.integers(0, 10, test)),
    }


def write_mnist_raw(root: Path, class_name: str = "MNIST") -> Path:
    """torchvision's layout: root/<MNIST|FashionMNIST>/raw/ with the four uncompressed idx files."""
    raw = root / class_name / "raw"
    raw.mkdir(parents=True)
    for stem, content in idx_files().items():
        (raw / stem).write_bytes(content)
    return root


def write_idx_gz(root: Path) -> Path:
    """The Debian dataset packages' layout: the four idx files gzipped, directly in root."""
    root.mkdir(parents=True, exist_ok=True)
    for stem, content in idx_files().items():
        with gzip.open(root / f"{stem}.gz", "wb") as handle:
            handle.write(content)
    return root


def write_image_folder(root: Path, classes=("n01440764", "n01443537"), per_class: int = 2, seed: int = 0) -> Path:
    """ImageNet's ImageFolder tree: root/{train,val}/<wnid>/*.JPEG."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for wnid in classes:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.JPEG", format="JPEG")
    return root
