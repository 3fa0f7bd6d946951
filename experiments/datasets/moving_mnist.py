"""Moving MNIST with ground-truth segmentation (RLadder §4.3, Fig. 7; SPEC §5).

The RLadder authors "reimplemented the dataset [Srivastava et al. 2015] ourselves" to have
the ground-truth segmentation: ``n_digits`` MNIST digits (drawn from the MNIST split, each
slot a random permutation of it) bounce on a black canvas for ``n_frames`` frames; a frame is
the pixelwise maximum of the digits (as in Srivastava et al.).

``segmentation`` (N, T, H, H) int8 gives per-pixel digit identity for AMI scoring:
``k = 1..n_digits`` where only digit ``k`` has ink ``>= ink_threshold``, :data:`BACKGROUND` (0)
where no digit does, and :data:`OVERLAP` (-1) where two or more do. AMI ignores background
and overlaps (RLadder §4.3): score the pixels with ``segmentation > 0``.

Reconstructed defaults (after Srivastava et al.'s generator, SPEC §5 gives none): 64×64
canvas, 28×28 digits, uniform random start in ``[0, 36]²``, uniform random direction, speed
3.6 px/frame (their step 0.1 of the 36-px range), real-valued positions rounded to the nearest
pixel for drawing, ``ink_threshold`` 128 (of 255).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from experiments.datasets._common import (
    ArrayBundle, BundleDataset, check_dtype, check_shape, entry, permuted_indices, split_streams,
)
from experiments.datasets.cache import generated_loader
from experiments.datasets.mnist import IMAGE_SIZE, mnist_source, split_size
from experiments.datasets.motion import bounce, paste
from experiments.datasets.paths import PathLike

NAME = "moving_mnist/v1"
BACKGROUND = 0
OVERLAP = -1


@dataclasses.dataclass(frozen=True)
class MovingMNISTSettings:
    """Generator settings (defaults reconstructed, see module doc)."""

    canvas_size: int = 64
    n_digits: int = 2
    n_frames: int = 20
    speed: float = 3.6
    ink_threshold: int = 128

    def __post_init__(self) -> None:
        if self.canvas_size < IMAGE_SIZE:
            raise ValueError(f"canvas_size must be >= {IMAGE_SIZE}, got {self.canvas_size}")
        if self.n_digits < 1 or self.n_digits > 127:
            raise ValueError(f"n_digits must be in 1..127, got {self.n_digits}")
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {self.n_frames}")
        if not 0 <= self.speed <= self.canvas_size - IMAGE_SIZE:
            raise ValueError(f"speed must be in [0, canvas_size - 28], got {self.speed}")
        if not 1 <= self.ink_threshold <= 255:
            raise ValueError(f"ink_threshold must be in 1..255, got {self.ink_threshold}")


@dataclasses.dataclass(frozen=True)
class MovingMNIST(ArrayBundle):
    """frames (N, T, H, H) uint8 · segmentation (N, T, H, H) int8 (see module doc) ·
    positions (N, T, K, 2) float32 top-left (row, col) before rounding · labels (N, K) int64 ·
    digit_index (N, K) int64 into the MNIST split."""

    frames: np.ndarray
    segmentation: np.ndarray
    positions: np.ndarray
    labels: np.ndarray
    digit_index: np.ndarray

    def __post_init__(self) -> None:
        n, t, h = self.frames.shape[:3]
        k = self.labels.shape[-1]
        check_shape("frames", self.frames, (n, t, h, h), "(N, T, H, H)")
        check_shape("segmentation", self.segmentation, (n, t, h, h), "(N, T, H, H)")
        check_shape("positions", self.positions, (n, t, k, 2), "(N, T, K, 2)")
        check_shape("labels", self.labels, (n, k), "(N, K)")
        check_shape("digit_index", self.digit_index, (n, k), "(N, K)")
        check_dtype("frames", self.frames, np.uint8)
        check_dtype("segmentation", self.segmentation, np.int8)


def segment(layers: np.ndarray, threshold: int) -> np.ndarray:
    """Per-pixel identity from per-digit ink ``layers`` (K, ...): 1..K, BACKGROUND or OVERLAP."""
    count = np.zeros(layers.shape[1:], dtype=np.int8)
    code = np.zeros(layers.shape[1:], dtype=np.int16)  # sum of (k + 1) over covering digits
    for j, layer in enumerate(layers):
        covers = (layer >= threshold).view(np.int8)
        count += covers
        code += covers * np.int16(j + 1)
    return np.where(count > 1, np.int16(OVERLAP), code).astype(np.int8)


def render_layers(digits: np.ndarray, corners: np.ndarray, canvas_size: int) -> np.ndarray:
    """Per-digit ink layers (K, N, T, H, H) uint8 of digits (N, K, 28, 28) at corners (N, T, K, 2)."""
    n, t, k = corners.shape[:3]
    layers = np.empty((k, n, t, canvas_size, canvas_size), dtype=np.uint8)
    for j in range(k):
        sprites = np.broadcast_to(digits[:, j, None], (n, t, IMAGE_SIZE, IMAGE_SIZE))
        sprites = sprites.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        rows, cols = corners[:, :, j].reshape(-1, 2).T
        layers[j] = paste(sprites, rows, cols, canvas_size).reshape(n, t, canvas_size, canvas_size)
    return layers


def generate_moving_mnist(
    split: str = "train",
    n: Optional[int] = None,
    seed: int = 0,
    settings: Optional[MovingMNISTSettings] = None,
    data_dir: Optional[PathLike] = None,
    chunk: int = 1024,
) -> MovingMNIST:
    """Generate (no cache) ``n`` sequences (default: as many as the MNIST ``split`` has digits).

    Memory: the result holds ``2 N T H²`` bytes (10000 default sequences: about 1.6 GB).
    """
    settings = settings or MovingMNISTSettings()
    mnist, n, total = mnist_source(split, n, data_dir)
    size = len(mnist)
    k, t, h = settings.n_digits, settings.n_frames, settings.canvas_size
    rng_digits, rng_start, rng_angle = split_streams(seed, split, 3)
    digit_index = np.stack([permuted_indices(rng_digits, size, total)[:n] for _ in range(k)], axis=1)
    limit = float(h - IMAGE_SIZE)
    start = rng_start.uniform(0.0, limit, size=(total, k, 2))[:n]
    angle = rng_angle.uniform(0.0, 2 * np.pi, size=(total, k))[:n]
    velocity = settings.speed * np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    positions, _ = bounce(start.reshape(-1, 2), velocity.reshape(-1, 2), t, limit)
    positions = positions.reshape(n, k, t, 2).transpose(0, 2, 1, 3)  # (N, T, K, 2)
    corners = np.clip(np.rint(positions), 0, limit).astype(np.int64)
    frames = np.empty((n, t, h, h), dtype=np.uint8)
    segmentation = np.empty((n, t, h, h), dtype=np.int8)
    for lo in range(0, n, chunk):
        rows = slice(lo, min(n, lo + chunk))
        layers = render_layers(mnist.images[digit_index[rows]], corners[rows], h)
        frames[rows] = layers[0]
        for layer in layers[1:]:
            np.maximum(frames[rows], layer, out=frames[rows])
        segmentation[rows] = segment(layers, settings.ink_threshold)
    return MovingMNIST(
        frames=frames,
        segmentation=segmentation,
        positions=positions.astype(np.float32),
        labels=mnist.labels[digit_index].astype(np.int64),
        digit_index=digit_index.astype(np.int64),
    )


load_moving_mnist = generated_loader(NAME, MovingMNIST, MovingMNISTSettings, generate_moving_mnist, split_size)


class MovingMNISTDataset(BundleDataset):
    """Map-style wrapper; item ``i``: ``frames`` (T, 1, H, H) float32 in [0, 1],
    ``segmentation`` (T, H, H) int64, ``labels`` (K,) int64."""

    ITEM = {
        "frames": entry("frames", np.float32, scale=255.0, channel=1),
        "segmentation": entry("segmentation", np.int64),
        "labels": entry("labels"),
    }
