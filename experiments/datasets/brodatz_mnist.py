"""Brodatz-textured MNIST (RLadder §4.2, Fig. 5b/6; SPEC §5).

"Thickened MNIST digits with 20 textures from the Brodatz dataset ... we randomly rotated and
scaled the 20 Brodatz textures." A sample is a background texture patch and a digit texture
patch (two distinct textures of the 20), composed with the thickened digit as soft alpha
exactly as in TextureMNIST (:func:`~experiments.datasets.texture_mnist.compose`): ``masks``
(N, 2, 28, 28), group 0 = background, group 1 = digit, summing to 1 per pixel.

Every choice below is reconstructed (the paper's appendix D.3 with the details is not in our
copy); all are settings:

* the 20 textures :data:`DEFAULT_TEXTURES` (homogeneous, visually distinct album plates);
* each texture is block-averaged by ``downsample`` (640 → 160 px) and, with ``equalise``,
  histogram-equalised to [0, 1] so that mean brightness alone does not tell textures apart;
* a patch is sampled bilinearly on a 28×28 grid rotated by a uniform angle in [0, 2π) and
  scaled by a log-uniform factor in ``scale_range``, centred uniformly where it fits;
* digits are thickened by a grey dilation (``(2·thicken + 1)²`` max filter) of ``MNIST / 255``;
* one image per digit of the MNIST split, in order; rotation/scaling applies to every split.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np
from scipy.ndimage import maximum_filter

from experiments.datasets._common import (
    ArrayBundle, BundleDataset, check_dtype, check_shape, entry, int_entry, split_streams,
)
from experiments.datasets.brodatz import BRODATZ_IDS, BRODATZ_SIZE, load_brodatz_stack
from experiments.datasets.cache import generated_loader
from experiments.datasets.mnist import IMAGE_SIZE, mnist_source, split_size
from experiments.datasets.paths import PathLike
from experiments.datasets.texture_mnist import compose

NAME = "brodatz_mnist/v1"
DEFAULT_TEXTURES: Tuple[int, ...] = (
    1, 4, 6, 9, 11, 16, 17, 19, 20, 21, 24, 29, 34, 52, 53, 57, 68, 77, 84, 92,
)


@dataclasses.dataclass(frozen=True)
class BrodatzMNISTSettings:
    """Generator settings (all reconstructed, see module doc)."""

    textures: Tuple[int, ...] = DEFAULT_TEXTURES
    downsample: int = 4
    equalise: bool = True
    scale_range: Tuple[float, float] = (0.7, 1.4)
    rotate: bool = True
    thicken: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "textures", tuple(int(t) for t in self.textures))
        if len(self.textures) < 2 or len(set(self.textures)) != len(self.textures):
            raise ValueError(f"textures must be at least 2 distinct Brodatz ids, got {self.textures}")
        if not set(self.textures) <= set(BRODATZ_IDS):
            raise ValueError(f"textures must be Brodatz ids 1..112, got {self.textures}")
        if self.downsample < 1 or BRODATZ_SIZE % self.downsample:
            raise ValueError(f"downsample must be a positive divisor of 640, got {self.downsample}")
        lo, hi = (float(x) for x in self.scale_range)
        object.__setattr__(self, "scale_range", (lo, hi))
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if 2 * hi * IMAGE_SIZE + 4 > BRODATZ_SIZE // self.downsample:
            raise ValueError("a scaled, rotated 28-px patch must fit in the downsampled texture")
        if self.thicken < 0:
            raise ValueError(f"thicken must be >= 0, got {self.thicken}")


@dataclasses.dataclass(frozen=True)
class BrodatzMNIST(ArrayBundle):
    """images (N, 28, 28) float32 in [0, 1] · masks (N, 2, 28, 28) float32 (0 background, 1 digit) ·
    labels (N,) int64 · texture_ids (N, 2) int8 (Brodatz D-number of background, digit) ·
    angles (N, 2) float32 radians · scales (N, 2) float32 · digit_index (N,) int64."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    texture_ids: np.ndarray
    angles: np.ndarray
    scales: np.ndarray
    digit_index: np.ndarray

    def __post_init__(self) -> None:
        n, h, w = self.images.shape
        check_shape("images", self.images, (n, h, w), "(N, H, W)")
        check_shape("masks", self.masks, (n, 2, h, w), "(N, 2, H, W)")
        for name in ("texture_ids", "angles", "scales"):
            check_shape(name, getattr(self, name), (n, 2), "(N, 2)")
        check_shape("labels", self.labels, (n,), "(N,)")
        check_shape("digit_index", self.digit_index, (n,), "(N,)")
        check_dtype("images", self.images, np.float32)
        check_dtype("masks", self.masks, np.float32)


def prepare_textures(stack: np.ndarray, downsample: int, equalise: bool) -> np.ndarray:
    """(K, 640, 640) uint8 -> (K, 640/d, 640/d) float32 in [0, 1]: block mean, then optional equalisation."""
    k, size = stack.shape[0], stack.shape[1] // downsample
    small = stack.reshape(k, size, downsample, size, downsample).astype(np.float64).mean(axis=(2, 4))
    if not equalise:
        return (small / 255.0).astype(np.float32)
    flat = small.reshape(k, -1)
    ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1)
    return (ranks / (flat.shape[1] - 1)).reshape(k, size, size).astype(np.float32)


def sample_patches(
    textures: np.ndarray, ids: np.ndarray, centres: np.ndarray, angles: np.ndarray, scales: np.ndarray, size: int
) -> np.ndarray:
    """Bilinear ``size``×``size`` patches (M, size, size) of textures[ids] (M,) rotated by ``angles``,
    scaled by ``scales`` (source px per output px) around ``centres`` (M, 2) (row, col)."""
    grid = np.arange(size, dtype=np.float64) - (size - 1) / 2
    u, v = np.meshgrid(grid, grid, indexing="ij")  # output row/col offsets
    cos, sin = (np.cos(angles) * scales)[:, None, None], (np.sin(angles) * scales)[:, None, None]
    rows = centres[:, 0, None, None] + cos * u - sin * v
    cols = centres[:, 1, None, None] + sin * u + cos * v
    r0, c0 = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    fr, fc = rows - r0, cols - c0
    t = ids[:, None, None]
    top = textures[t, r0, c0] * (1 - fc) + textures[t, r0, c0 + 1] * fc
    bottom = textures[t, r0 + 1, c0] * (1 - fc) + textures[t, r0 + 1, c0 + 1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def thicken_digits(images: np.ndarray, radius: int) -> np.ndarray:
    """(N, 28, 28) uint8 -> soft alpha (N, 28, 28) float32 in [0, 1], grey-dilated by ``radius`` px."""
    alpha = images.astype(np.float32) / 255.0
    if radius == 0:
        return alpha
    return maximum_filter(alpha, size=(1, 2 * radius + 1, 2 * radius + 1), mode="constant", cval=0.0)


def generate_brodatz_mnist(
    split: str = "train",
    n: Optional[int] = None,
    seed: int = 0,
    settings: Optional[BrodatzMNISTSettings] = None,
    data_dir: Optional[PathLike] = None,
    chunk: int = 4096,
) -> BrodatzMNIST:
    """Generate (no cache) ``n`` images (default: one per digit of the MNIST ``split``)."""
    settings = settings or BrodatzMNISTSettings()
    mnist, n, total = mnist_source(split, n, data_dir)
    size = len(mnist)
    rng_tex, rng_angle, rng_scale, rng_centre = split_streams(seed, split, 4)
    bank = prepare_textures(load_brodatz_stack(settings.textures, data_dir), settings.downsample, settings.equalise)
    choice = np.argsort(rng_tex.random((total, len(settings.textures))), axis=1)[:n, :2]
    angles = rng_angle.uniform(0, 2 * np.pi, size=(total, 2))[:n] if settings.rotate else np.zeros((n, 2))
    lo, hi = settings.scale_range
    scales = np.exp(rng_scale.uniform(np.log(lo), np.log(hi), size=(total, 2)))[:n]
    reach = scales * (IMAGE_SIZE - 1) / 2 * np.sqrt(2) + 1  # patch half-diagonal + bilinear margin
    side = bank.shape[-1]
    centres = reach[..., None] + rng_centre.random((total, 2, 2))[:n] * (side - 2 - 2 * reach[..., None])
    digit_index = np.arange(n, dtype=np.int64) % size
    alphas = thicken_digits(mnist.images[: min(n, size)], settings.thicken)[digit_index][:, None]
    patches = np.empty((n, 2, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for lo_i in range(0, n, chunk):
        rows = slice(lo_i, min(n, lo_i + chunk))
        m = patches[rows].shape[0] * 2
        patches[rows] = sample_patches(
            bank, choice[rows].reshape(m), centres[rows].reshape(m, 2), angles[rows].reshape(m),
            scales[rows].reshape(m), IMAGE_SIZE,
        ).reshape(-1, 2, IMAGE_SIZE, IMAGE_SIZE)
    images, masks = compose(patches, alphas)
    return BrodatzMNIST(
        images=images, masks=masks, labels=mnist.labels[digit_index].astype(np.int64),
        texture_ids=np.asarray(settings.textures, dtype=np.int8)[choice], angles=angles.astype(np.float32),
        scales=scales.astype(np.float32), digit_index=digit_index,
    )


load_brodatz_mnist = generated_loader(NAME, BrodatzMNIST, BrodatzMNISTSettings, generate_brodatz_mnist, split_size)


class BrodatzMNISTDataset(BundleDataset):
    """Map-style wrapper; item ``i``: ``image`` (1, 28, 28) float32, ``masks`` (2, 28, 28) float32,
    ``label`` int64 scalar."""

    ITEM = {"image": entry("images", channel=0), "masks": entry("masks"), "label": int_entry("labels")}
