"""Loaders of the real files: MNIST, the polyphonic corpora, Brodatz (SPEC §5, ../shared/data/README.md)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from experiments.datasets import paths
from experiments.datasets.brodatz import BRODATZ_IDS, load_brodatz, load_brodatz_stack
from experiments.datasets.mnist import MnistDataset, load_mnist, mnist_split
from experiments.datasets.polyphonic import (
    CORPORA, SPLIT_SIZES, PolyphonicDataset, load_jsb_pickle, load_polyphonic, pad_rolls,
)

pytestmark = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent",
)

# From ../shared/data/README.md ("Verification done").
MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}
MNIST_MEAN = {"train": 33.318, "test": 33.791}
# corpus -> split -> (sequences, total steps, shortest, longest)
POLY = {
    "jsb_chorales": {"train": (229, 13807, 25, 129), "valid": (76, 4602, 32, 144), "test": (77, 4725, 32, 160)},
    "nottingham": {"train": (694, 176561, 40, 1788), "valid": (173, 45513, 96, 1473), "test": (170, 44463, 63, 1793)},
    "musedata": {"train": (524, 245202, 9, 3457), "valid": (135, 82755, 63, 3723), "test": (124, 64339, 45, 4273)},
    "piano_midi": {"train": (87, 75911, 111, 3857), "valid": (12, 8540, 209, 1637), "test": (25, 19036, 65, 2645)},
}


@pytest.mark.parametrize("kind,count", [("train", 60000), ("test", 10000)])
def test_mnist_files(kind, count):
    images, labels = load_mnist(kind)
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels, minlength=10).tolist() == MNIST_COUNTS[kind]
    assert images.mean() == pytest.approx(MNIST_MEAN[kind], abs=5e-4)
    assert not images.flags.writeable


def test_mnist_splits():
    train_images, train_labels = load_mnist("train")
    sizes = {s: len(mnist_split(s)) for s in ("train", "valid", "test", "train_full")}
    assert sizes == {"train": 50000, "valid": 10000, "test": 10000, "train_full": 60000}
    valid = mnist_split("valid")
    assert np.array_equal(valid.images, train_images[50000:])
    assert np.array_equal(valid.labels, train_labels[50000:])
    assert valid.indices[0] == 50000
    with pytest.raises(ValueError, match="split"):
        mnist_split("validation")


def test_mnist_dataset():
    ds = MnistDataset("test")
    image, label = ds[0]
    assert len(ds) == 10000 and image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and label.item() == 7


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_polyphonic_corpus(corpus):
    rolls = load_polyphonic(corpus)
    for split, (count, steps, shortest, longest) in POLY[corpus].items():
        seqs = rolls.split(split)
        assert len(seqs) == count == SPLIT_SIZES[corpus][("train", "valid", "test").index(split)]
        lengths = [r.shape[0] for r in seqs]
        assert (sum(lengths), min(lengths), max(lengths)) == (steps, shortest, longest)
        for r in seqs:
            assert r.ndim == 2 and r.shape[1] == 88 and r.dtype == np.uint8
            assert r.max() <= 1


def test_jsb_pickle_equals_mat():
    mat, pickled = load_polyphonic("jsb_chorales"), load_jsb_pickle()
    for split in ("train", "valid", "test"):
        assert len(mat.split(split)) == len(pickled.split(split))
        for a, b in zip(mat.split(split), pickled.split(split)):
            assert np.array_equal(a, b)


def test_polyphonic_dataset_and_padding():
    ds = PolyphonicDataset("jsb_chorales", "valid")
    items = [ds[0], ds[1], ds[2]]
    batch, lengths = pad_rolls(items)
    assert batch.shape == (3, int(lengths.max()), 88) and batch.dtype == torch.float32
    for i, item in enumerate(items):
        assert torch.equal(batch[i, : lengths[i]], item) and batch[i, lengths[i]:].sum() == 0


def test_polyphonic_unknown_corpus():
    with pytest.raises(ValueError, match="corpus"):
        load_polyphonic("bach")


def test_brodatz_all_textures():
    seen = set()
    for i in BRODATZ_IDS:
        image = load_brodatz(i)
        assert image.shape == (640, 640) and image.dtype == np.uint8
        assert image.std() > 5  # a real texture, not a blank decode
        seen.add(image.tobytes()[:4096] + image.tobytes()[-4096:])
    assert len(seen) == 112
    stack = load_brodatz_stack([1, 112])
    assert stack.shape == (2, 640, 640) and np.array_equal(stack[1], load_brodatz(112))
    with pytest.raises(ValueError, match="1..112"):
        load_brodatz(113)
