"""Each vision setting trains a step on a fixture in its data set's real on-disk format."""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import read_run, run_folders
from fixtures import write_cifar10, write_idx_gz, write_image_folder, write_mnist_raw
from repro.data.vision import IDX_FILES, _decompress_idx_folder, load_torchvision_mnist

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
TINY = ("trainer.epochs=1", "trainer.batch_size=2", "dataset.download=false", "trainer.threads=2")


def assert_one_epoch(results_dir: Path, metric="test_acc") -> None:
    (folder,) = run_folders(results_dir)
    record, epochs = read_run(folder)
    assert record["status"] == "completed"
    assert len(epochs) == 1
    assert epochs["step"].iloc[0] >= 1
    assert 0 <= epochs[metric].iloc[0] <= 100


def test_cifar10_fixture_trains(repro, results_dir, tmp_path):
    root = write_cifar10(tmp_path / "cifar")
    status, out, err = repro("run", "dataset=cifar10", "opt=sgd", f"dataset.root={root}", *TINY)
    assert status == 0, err
    assert_one_epoch(results_dir)


def test_mnist_torchvision_layout_trains(repro, results_dir, tmp_path):
    root = write_mnist_raw(tmp_path / "mnist", "MNIST")
    status, _, err = repro("run", "dataset=mnist", "opt=momentum", f"dataset.root={root}", *TINY)
    assert status == 0, err
    assert_one_epoch(results_dir)


def test_fashion_mnist_gz_layout_trains(repro, results_dir, tmp_path):
    root = write_idx_gz(tmp_path / "fashion")
    status, _, err = repro("run", "dataset=fashion_mnist", "opt=adam", f"dataset.root={root}",
                           f"paths.data_dir={tmp_path / 'cache'}", *TINY)
    assert status == 0, err
    assert_one_epoch(results_dir)


def test_imagenet_image_folder_trains(repro, results_dir, tmp_path):
    root = write_image_folder(tmp_path / "imagenet")
    status, _, err = repro("run", "dataset=imagenet", "opt=momentum", f"dataset.root={root}",
                           "dataset.image_size=64", "dataset.eval_resize=72", *TINY)
    assert status == 0, err
    assert_one_epoch(results_dir, metric="test_top5")


def test_mnist_5k_holds_out_stratified_1000():
    from repro.data.vision import load_mnist_5k

    data = load_mnist_5k(OmegaConf.create({"test_size": 1000, "split_seed": 0}))
    labels = data.test.tensors[1]
    assert len(data.train) == 4000
    assert len(data.test) == 1000
    assert labels.bincount().tolist() == [100] * 10


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_loads(tmp_path):
    cfg = OmegaConf.create({"name": "fashion_mnist", "root": str(DEBIAN_FASHION), "download": False})
    data = load_torchvision_mnist(cfg, str(tmp_path))
    assert len(data.train) == 60000
    assert len(data.test) == 10000
    assert tuple(data.train.tensors[0].shape[1:]) == (1, 28, 28)


def test_idx_cache_survives_concurrent_writers(tmp_path):
    # Parallel runs on one data_dir (scripts/compare_runs.sh starts two at once) decompress the
    # same .gz files into the same cache at the same moment.
    # Files of a few MB keep each writer busy long enough for the writers to overlap.
    source = tmp_path / "gz"
    source.mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for stem in IDX_FILES:
        expected[f"{stem}.gz"] = rng.integers(0, 256, 4_000_000, dtype=np.uint8).tobytes()
        (source / f"{stem}.gz").write_bytes(gzip.compress(expected[f"{stem}.gz"], compresslevel=1))

    for attempt in range(5):
        target = tmp_path / f"cache{attempt}"
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(_decompress_idx_folder, source, target) for _ in range(4)]
            for future in futures:
                future.result()

        assert {path.name for path in target.iterdir()} == {name[:-3] for name in expected}
        for name, content in expected.items():
            assert (target / name[:-3]).read_bytes() == content
