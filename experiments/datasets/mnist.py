"""MNIST from the four original IDX ``.gz`` files (SPEC §5), verified by sha256.

``load_mnist("train")`` gives the 60000 training and ``load_mnist("test")`` the 10000 test
images, ``(N, 28, 28) uint8`` with ``(N,) int64`` labels 0–9. :func:`mnist_split` gives the
splits every generated set uses ("MNIST's train/valid/test split", RLadder §3.1):

* ``train``: the first 50000 training images; ``valid``: the last 10000 training images;
* ``test``: the 10000 test images; ``train_full``: all 60000 training images (train + valid;
  the RLadder semi-supervised runs use 1k labelled + 59k unlabelled of these).
"""
from __future__ import annotations

import dataclasses
import gzip
from typing import Dict, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from experiments.datasets._common import ArrayBundle, check_count, check_dtype, check_shape, check_split
from experiments.datasets.paths import DataFileCorrupt, PathLike, verified_path

FILES: Dict[str, Tuple[str, str]] = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}
COUNTS = {"train": 60000, "test": 10000}
N_TRAIN = 50000  # size of the ``train`` split; ``valid`` is the rest of the training file
IMAGE_SIZE = 28

_MEMO: Dict[Tuple[str, str], Tuple[np.ndarray, np.ndarray]] = {}


def read_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse an (uncompressed) IDX file of unsigned bytes: magic ``0x0000 08 NDIM``, dims, data."""
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataFileCorrupt(f"{name} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise DataFileCorrupt(f"{name}: IDX dims {dims} do not match its {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclasses.dataclass(frozen=True)
class MnistSplit(ArrayBundle):
    """``images`` (N, 28, 28) uint8, ``labels`` (N,) int64, ``indices`` (N,) int64 into the source file."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        check_shape("images", self.images, (n, IMAGE_SIZE, IMAGE_SIZE), "(N, 28, 28)")
        check_dtype("images", self.images, np.uint8)
        check_shape("labels", self.labels, (n,), "(N,)")
        check_shape("indices", self.indices, (n,), "(N,)")


def load_mnist(
    kind: str = "train", data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` of the ``"train"`` (60000) or ``"test"`` (10000) file.

    The arrays are read-only and shared between calls (copy before writing).
    """
    if kind not in FILES:
        raise ValueError(f"kind must be 'train' or 'test', got {kind!r}")
    image_rel, label_rel = FILES[kind]
    image_path = verified_path(image_rel, data_dir, cache_dir)
    label_path = verified_path(label_rel, data_dir, cache_dir)
    key = (str(image_path.resolve()), str(label_path.resolve()))
    if key not in _MEMO:
        images = read_idx(gzip.decompress(image_path.read_bytes()), image_rel)
        labels = read_idx(gzip.decompress(label_path.read_bytes()), label_rel).astype(np.int64)
        if images.shape != (COUNTS[kind], IMAGE_SIZE, IMAGE_SIZE) or labels.shape != (COUNTS[kind],):
            raise DataFileCorrupt(f"{image_rel}/{label_rel}: shapes {images.shape}, {labels.shape}")
        images.flags.writeable = False
        labels.flags.writeable = False
        _MEMO[key] = (images, labels)
    return _MEMO[key]


def mnist_split(
    split: str, data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None
) -> MnistSplit:
    """One of ``train`` (50000) / ``valid`` (10000) / ``test`` (10000) / ``train_full`` (60000)."""
    check_split(split)
    images, labels = load_mnist("test" if split == "test" else "train", data_dir, cache_dir)
    rows = {
        "train": slice(0, N_TRAIN),
        "valid": slice(N_TRAIN, COUNTS["train"]),
        "test": slice(0, COUNTS["test"]),
        "train_full": slice(0, COUNTS["train"]),
    }[split]
    return MnistSplit(images[rows], labels[rows], np.arange(len(images), dtype=np.int64)[rows])


def split_size(split: str, data_dir: Optional[PathLike] = None) -> int:
    """How many digits the MNIST ``split`` has: the default ``n`` of a set drawn from it."""
    return len(mnist_split(split, data_dir))


def mnist_source(split: str, n: Optional[int], data_dir: Optional[PathLike] = None) -> Tuple[MnistSplit, int, int]:
    """``(mnist, n, total)`` for a generator drawing from the MNIST ``split``: ``n`` checked (``None``:
    one sample per digit) and ``total = max(n, len(mnist))``, the number of samples its random
    quantities are drawn for, so that the first samples do not depend on ``n`` (SPEC §5)."""
    mnist = mnist_split(split, data_dir)
    n = check_count(n, len(mnist))
    return mnist, n, max(n, len(mnist))


class MnistDataset(Dataset):
    """Map-style MNIST: item ``i`` is ``(image (1, 28, 28) float32 in [0, 1], label int64 scalar)``."""

    def __init__(self, split: str = "train", data_dir: Optional[PathLike] = None) -> None:
        self.data = mnist_split(split, data_dir)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        image = torch.from_numpy(self.data.images[i].astype(np.float32) / 255.0)[None]
        return image, torch.tensor(int(self.data.labels[i]), dtype=torch.int64)
