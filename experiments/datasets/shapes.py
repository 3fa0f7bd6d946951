"""Shapes (Tagger §4 / Reichert & Serre 2014; SPEC §5).

20×20 binary images, each with ``n_shapes`` (3) shapes chosen uniformly from a 7×7 square
with a 3×3 hole, a 7×12 up-triangle and its vertical flip (the templates of the Tagger
authors' ``data/shapes.py``), each at a uniformly random position fully inside the image,
composed by union, overlaps allowed. Split sizes 50k/10k/10k (train/valid/test).

``groups`` (N, H, W) int8: ``k = 1..n_shapes`` where only shape ``k`` covers the pixel,
:data:`BACKGROUND` (0) where none does and :data:`OVERLAP` (-1) where two or more do; the
background and overlaps are not scored (AMI over ``groups > 0``). :func:`soft_masks` gives the
Tagger file's mask layout (one-hot, ``1/n_shapes`` on unscored pixels).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import numpy as np

from experiments.datasets._common import (
    ArrayBundle, BundleDataset, check_count, check_dtype, check_shape, check_split, entry, split_streams,
)
from experiments.datasets.cache import load_generated
from experiments.datasets.paths import PathLike

NAME = "shapes/v1"
BACKGROUND = 0
OVERLAP = -1
SPLIT_SIZES: Dict[str, int] = {"train": 50000, "valid": 10000, "test": 10000, "train_full": 60000}

SQUARE = np.array(
    [[1, 1, 1, 1, 1, 1, 1],
     [1, 1, 1, 1, 1, 1, 1],
     [1, 1, 0, 0, 0, 1, 1],
     [1, 1, 0, 0, 0, 1, 1],
     [1, 1, 0, 0, 0, 1, 1],
     [1, 1, 1, 1, 1, 1, 1],
     [1, 1, 1, 1, 1, 1, 1]], dtype=np.uint8)
TRIANGLE_UP = np.array(
    [[0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
     [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
     [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0],
     [0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0],
     [0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0],
     [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
     [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], dtype=np.uint8)
TRIANGLE_DOWN = TRIANGLE_UP[::-1].copy()
TEMPLATES = (SQUARE, TRIANGLE_UP, TRIANGLE_DOWN)  # shape ids 0, 1, 2


@dataclasses.dataclass(frozen=True)
class ShapesSettings:
    """Image size and shapes per image (Tagger: 20×20, 3)."""

    height: int = 20
    width: int = 20
    n_shapes: int = 3

    def __post_init__(self) -> None:
        if self.height < 7 or self.width < 12:
            raise ValueError(f"height/width must be at least 7/12 to fit every shape, got {self.height}/{self.width}")
        if not 1 <= self.n_shapes <= 127:
            raise ValueError(f"n_shapes must be in 1..127, got {self.n_shapes}")


@dataclasses.dataclass(frozen=True)
class Shapes(ArrayBundle):
    """images (N, H, W) uint8 0/1 · groups (N, H, W) int8 (see module doc) ·
    shape_ids (N, K) int8 (0 square, 1 up-triangle, 2 down-triangle) · positions (N, K, 2) int8 top-left (row, col)."""

    images: np.ndarray
    groups: np.ndarray
    shape_ids: np.ndarray
    positions: np.ndarray

    def __post_init__(self) -> None:
        n, h, w = self.images.shape
        k = self.shape_ids.shape[-1]
        check_shape("images", self.images, (n, h, w), "(N, H, W)")
        check_shape("groups", self.groups, (n, h, w), "(N, H, W)")
        check_shape("shape_ids", self.shape_ids, (n, k), "(N, K)")
        check_shape("positions", self.positions, (n, k, 2), "(N, K, 2)")
        check_dtype("images", self.images, np.uint8)
        check_dtype("groups", self.groups, np.int8)


def _stamps(height: int, width: int) -> np.ndarray:
    """(3, H+7, W+12) uint8: each template at the top-left of a blank padded canvas."""
    stamps = np.zeros((len(TEMPLATES), height + 7, width + 12), dtype=np.uint8)
    for i, t in enumerate(TEMPLATES):
        stamps[i, : t.shape[0], : t.shape[1]] = t
    return stamps


def draw_shapes(shape_ids: np.ndarray, positions: np.ndarray, height: int, width: int):
    """``(images, groups)`` for shapes (N, K) at top-left positions (N, K, 2) (vectorised)."""
    stamps = _stamps(height, width)
    n, k = shape_ids.shape
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    count = np.zeros((n, height, width), dtype=np.int16)
    groups = np.zeros((n, height, width), dtype=np.int8)
    for j in range(k):
        r = rows - positions[:, j, 0, None, None].astype(np.int64)  # index into the stamp; <0 -> blank
        c = cols - positions[:, j, 1, None, None].astype(np.int64)
        r = np.where(r < 0, height + 6, r)
        c = np.where(c < 0, width + 11, c)
        covered = stamps[shape_ids[:, j, None, None], r, c].astype(bool)
        count += covered
        groups[covered] = j + 1
    groups[count > 1] = OVERLAP
    return (count > 0).astype(np.uint8), groups


def soft_masks(groups: np.ndarray, n_shapes: int) -> np.ndarray:
    """(N, K, H, W) float32: one-hot shape masks, ``1/K`` on background and overlap (Tagger's layout)."""
    k = np.arange(1, n_shapes + 1, dtype=np.int8)[None, :, None, None]
    g = groups[:, None]
    return np.where(g > 0, (g == k).astype(np.float32), np.float32(1.0 / n_shapes)).astype(np.float32)


def generate_shapes(
    split: str = "train", n: Optional[int] = None, seed: int = 0, settings: Optional[ShapesSettings] = None
) -> Shapes:
    """Generate (no cache) ``n`` images (default: the split's size, 50k/10k/10k)."""
    settings = settings or ShapesSettings()
    check_split(split)
    n = check_count(n, SPLIT_SIZES[split])
    total = max(n, SPLIT_SIZES[split])
    k = settings.n_shapes
    rng_shape, rng_pos = split_streams(seed, split, 2)
    shape_ids = rng_shape.integers(0, len(TEMPLATES), size=(total, k))
    sizes = np.array([t.shape for t in TEMPLATES])[shape_ids]  # (total, k, 2)
    highs = np.array([settings.height, settings.width]) - sizes + 1
    positions = rng_pos.integers(0, highs)[:n]  # uniform over 0..H-h, 0..W-w
    shape_ids = shape_ids[:n]
    images, groups = draw_shapes(shape_ids, positions, settings.height, settings.width)
    return Shapes(images, groups, shape_ids.astype(np.int8), positions.astype(np.int8))


def load_shapes(
    split: str = "train", n: Optional[int] = None, seed: int = 0, settings: Optional[ShapesSettings] = None,
    cache_dir: Optional[PathLike] = None, use_cache: bool = True, on_corrupt: str = "regenerate",
) -> Shapes:
    """:func:`generate_shapes` through the ``.npz`` cache (see :func:`.cache.load_generated`)."""
    settings = settings or ShapesSettings()
    return load_generated(NAME, Shapes, lambda k: generate_shapes(split, k, seed, settings), settings, split, n,
                          seed, lambda: SPLIT_SIZES[split], cache_dir, use_cache, on_corrupt)


class ShapesDataset(BundleDataset):
    """Map-style wrapper; item ``i``: ``image`` (1, H, W) float32 0/1, ``groups`` (H, W) int64,
    ``masks`` (K, H, W) float32 (:func:`soft_masks`)."""

    ITEM = {
        "image": entry("images", np.float32, channel=0),
        "groups": entry("groups", np.int64),
        "masks": entry(lambda data, i: soft_masks(data.groups[i][None], data.shape_ids.shape[-1])[0]),
    }

    @property
    def n_shapes(self) -> int:
        return self.data.shape_ids.shape[-1]
