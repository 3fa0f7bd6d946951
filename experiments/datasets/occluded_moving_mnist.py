"""Occluded Moving MNIST (RLadder §3.1, Fig. 2; SPEC §5).

A downscaled MNIST digit flies for ``n_frames`` frames on a white canvas behind white
horizontal and vertical bars (``bar_width`` px wide, ``bar_gap`` visible px between them), with
one of 8 discrete velocities, bouncing off the canvas edges. Digits follow MNIST's split (one
sequence per digit of the split, in order; ``n`` larger than the split reuses digits with new
motion). Because bars and canvas share one colour, occluded digit pixels simply vanish.

Arrays hold *ink* (0 = canvas/bar colour, 255 = full ink); :class:`OccludedMovingMNISTDataset`
turns ink into images (``white_canvas=True``: ``image = 1 - ink / 255``, the paper's white
canvas; ``False``: ``image = ink / 255``).

The *optimal temporal reconstruction* is computable because motion is known: a digit pixel is
*seen* by frame ``t`` if it lay on a visible (non-bar) canvas pixel in some frame ``<= t``;
``reconstruction[:, t]`` draws the seen pixels at frame ``t``'s position, so
``reconstruction[:, -1]`` is every pixel of the digit seen in any frame — the input of the
"optimal reconstruction + static classifier" gold standard.

Reconstructed defaults (the paper's numbers were lost, SPEC §5): 16×16 digit (antialiased
bilinear downscaling of the 28×28 digit, rounded to uint8), 32×32 canvas, velocities
``(±1, ±2), (±2, ±1)`` px/frame, uniform integer start positions; ``bar_offset = 8`` puts the
bars at pixels 8–11 and 20–23, so a 32-px canvas reads 8 visible | 4 bar | 8 | 4 | 8.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np
import torch

from experiments.datasets._common import (
    ArrayBundle, BundleDataset, Reader, Source, check_dtype, check_shape, entry, int_entry, split_streams,
)
from experiments.datasets.cache import generated_loader
from experiments.datasets.mnist import mnist_source, split_size
from experiments.datasets.motion import bounce, crop, paste
from experiments.datasets.paths import PathLike

NAME = "occluded_moving_mnist/v1"
DEFAULT_VELOCITIES: Tuple[Tuple[int, int], ...] = (
    (1, 2), (1, -2), (-1, 2), (-1, -2), (2, 1), (2, -1), (-2, 1), (-2, -1),
)


@dataclasses.dataclass(frozen=True)
class OccludedMovingMNISTSettings:
    """Generator settings; velocities are ``(d_row, d_col)`` px/frame. Defaults: see module doc."""

    digit_size: int = 16  # reconstructed
    canvas_size: int = 32  # reconstructed
    n_frames: int = 5
    velocities: Tuple[Tuple[int, int], ...] = DEFAULT_VELOCITIES  # reconstructed
    bar_width: int = 4
    bar_gap: int = 8
    bar_offset: int = 8  # reconstructed

    def __post_init__(self) -> None:
        for name in ("digit_size", "canvas_size", "n_frames", "bar_width", "bar_gap"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.digit_size > self.canvas_size:
            raise ValueError(f"digit_size {self.digit_size} exceeds canvas_size {self.canvas_size}")
        if self.bar_offset < 0:
            raise ValueError(f"bar_offset must be >= 0, got {self.bar_offset}")
        v = np.asarray(self.velocities)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) == 0 or len({tuple(x) for x in v.tolist()}) != len(v):
            raise ValueError(f"velocities must be distinct (d_row, d_col) pairs, got {self.velocities!r}")
        if np.abs(v).max() > self.canvas_size - self.digit_size:
            raise ValueError("velocities must not exceed canvas_size - digit_size px/frame")
        object.__setattr__(self, "velocities", tuple(tuple(int(c) for c in x) for x in v.tolist()))


@dataclasses.dataclass(frozen=True)
class OccludedMovingMNIST(ArrayBundle):
    """N sequences of T frames on an H×H canvas with S×S digits (all ink, 0–255 uint8).

    frames (N, T, H, H) uint8: observed, occluded · reconstruction (N, T, H, H) uint8: seen-so-far
    digit at frame t's position · visible (N, T, S, S) bool: digit pixel unoccluded at frame t ·
    digits (N, S, S) uint8: the whole downscaled digit · positions (N, T, 2) int16: top-left
    (row, col) · velocities (N, T, 2) int8: velocity from frame t to t+1 · labels (N,) int64 ·
    digit_index (N,) int64: index into the MNIST split.
    """

    frames: np.ndarray
    reconstruction: np.ndarray
    visible: np.ndarray
    digits: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    labels: np.ndarray
    digit_index: np.ndarray

    def __post_init__(self) -> None:
        n, t, h = self.frames.shape[:3]
        s = self.digits.shape[-1]
        check_shape("frames", self.frames, (n, t, h, h), "(N, T, H, H)")
        check_shape("reconstruction", self.reconstruction, (n, t, h, h), "(N, T, H, H)")
        check_shape("visible", self.visible, (n, t, s, s), "(N, T, S, S)")
        check_shape("digits", self.digits, (n, s, s), "(N, S, S)")
        check_shape("positions", self.positions, (n, t, 2), "(N, T, 2)")
        check_shape("velocities", self.velocities, (n, t, 2), "(N, T, 2)")
        check_shape("labels", self.labels, (n,), "(N,)")
        check_shape("digit_index", self.digit_index, (n,), "(N,)")
        for name in ("frames", "reconstruction", "digits"):
            check_dtype(name, getattr(self, name), np.uint8)
        check_dtype("visible", self.visible, np.bool_)

    @property
    def seen(self) -> np.ndarray:
        """(N, S, S) bool: digit pixels visible in any frame."""
        return self.visible.any(axis=1)

    @property
    def optimal_reconstruction(self) -> np.ndarray:
        """(N, H, H) uint8: every digit pixel seen in any frame, at the last frame's position."""
        return self.reconstruction[:, -1]


def bar_mask(settings: OccludedMovingMNISTSettings) -> np.ndarray:
    """(H, H) bool, True on the bars: rows/cols ``c`` with ``(c - bar_offset) mod (width + gap) < width``."""
    c = np.arange(settings.canvas_size)
    on_bar = (c - settings.bar_offset) % (settings.bar_width + settings.bar_gap) < settings.bar_width
    return on_bar[:, None] | on_bar[None, :]


def downscale_digits(images: np.ndarray, size: int, chunk: int = 8192) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, size, size) uint8 by antialiased bilinear resampling, rounded."""
    if images.shape[-1] == size:
        return np.array(images, dtype=np.uint8)
    out = np.empty((images.shape[0], size, size), dtype=np.uint8)
    for i in range(0, images.shape[0], chunk):
        x = torch.from_numpy(np.asarray(images[i:i + chunk], dtype=np.float32))[:, None]
        y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = y[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def render(digits: np.ndarray, positions: np.ndarray, settings: OccludedMovingMNISTSettings):
    """``(frames, reconstruction, visible)`` of digits (N, S, S) moving along positions (N, T, 2)."""
    n, t = positions.shape[:2]
    s, h = settings.digit_size, settings.canvas_size
    rows, cols = positions.reshape(-1, 2).T
    visible = crop(~bar_mask(settings), rows, cols, s).reshape(n, t, s, s)
    seen = np.logical_or.accumulate(visible, axis=1)
    sprites = np.broadcast_to(digits[:, None], (n, t, s, s))
    frames = paste((sprites * visible).reshape(-1, s, s), rows, cols, h).reshape(n, t, h, h)
    recon = paste((sprites * seen).reshape(-1, s, s), rows, cols, h).reshape(n, t, h, h)
    return frames, recon, visible


def render_clean(data: OccludedMovingMNIST) -> np.ndarray:
    """(N, T, H, H) uint8: the un-occluded digit in every frame (ground truth the network never sees)."""
    n, t, h = data.frames.shape[:3]
    s = data.digits.shape[-1]
    rows, cols = data.positions.reshape(-1, 2).T
    sprites = np.broadcast_to(data.digits[:, None], (n, t, s, s)).reshape(-1, s, s)
    return paste(sprites, rows, cols, h).reshape(n, t, h, h)


def generate_occluded_moving_mnist(
    split: str = "train",
    n: Optional[int] = None,
    seed: int = 0,
    settings: Optional[OccludedMovingMNISTSettings] = None,
    data_dir: Optional[PathLike] = None,
) -> OccludedMovingMNIST:
    """Generate (no cache) ``n`` sequences (default: one per digit of the MNIST ``split``)."""
    settings = settings or OccludedMovingMNISTSettings()
    mnist, n, total = mnist_source(split, n, data_dir)
    size = len(mnist)
    rng_start, rng_velocity = split_streams(seed, split, 2)
    limit = settings.canvas_size - settings.digit_size
    start = rng_start.integers(0, limit + 1, size=(total, 2))[:n]
    choice = rng_velocity.integers(0, len(settings.velocities), size=total)[:n]
    velocity = np.asarray(settings.velocities, dtype=np.int64)[choice]
    positions, velocities = bounce(start, velocity, settings.n_frames, limit)
    digit_index = np.arange(n, dtype=np.int64) % size
    digits = downscale_digits(mnist.images[: min(n, size)], settings.digit_size)[digit_index]
    frames, recon, visible = render(digits, positions, settings)
    return OccludedMovingMNIST(
        frames=frames, reconstruction=recon, visible=visible, digits=digits,
        positions=positions.astype(np.int16), velocities=velocities.astype(np.int8),
        labels=mnist.labels[digit_index].astype(np.int64), digit_index=digit_index,
    )


load_occluded_moving_mnist = generated_loader(
    NAME, OccludedMovingMNIST, OccludedMovingMNISTSettings, generate_occluded_moving_mnist, split_size,
)


def _image(source: Source) -> Reader:
    """Ink (T, H, H) -> image (T, 1, H, H): ``1 - ink / 255`` on the white canvas, else ``ink / 255``."""
    ink = entry(source, np.float32, scale=255.0, channel=1)
    return lambda dataset, i: 1.0 - ink(dataset, i) if dataset.white_canvas else ink(dataset, i)


class OccludedMovingMNISTDataset(BundleDataset):
    """Map-style wrapper; item ``i`` is a dict of tensors.

    ``frames``, ``reconstruction``, ``clean``: (T, 1, H, H) float32 in [0, 1] (images, see
    ``white_canvas``); ``visible``: (T, S, S) bool; ``label``: int64 scalar.
    """

    ITEM = {
        "frames": _image("frames"),
        "reconstruction": _image("reconstruction"),
        "clean": _image(lambda data, i: render_clean(data.subset([i]))[0]),
        "visible": entry("visible"),
        "label": int_entry("labels"),
    }

    def __init__(self, data: OccludedMovingMNIST, white_canvas: bool = True) -> None:
        super().__init__(data)
        self.white_canvas = white_canvas
