"""TextureMNIST1 / TextureMNIST2, "Freq20" (Tagger §4; the authors' ``FreqMNIST28`` notebook; SPEC §5).

Texture bank: 20 sinusoids, each the real part of the 2-D inverse FFT of a single
coefficient ``exp(2πi φ)`` (random phase ``φ``) at array position ``(f0, f1)`` of a 38×38
grid, normalised to [0, 1] by its min and max. The frequencies are
``{4, 10, 21, 32, 37} × {0, 4, 8, 12}`` with the row index ``r`` of the first factor (0..4)
added to the second ("y") frequency: ``(f0, f1) = (a_r, b + r)``; 38 = the largest frequency + 1.

A sample composes, bottom to top, a background texture and ``n_digits`` digits, each a random
28×28 crop of a distinct bank texture, with the MNIST intensity ``/ 255`` as a soft alpha:
``image <- alpha · texture + (1 - alpha) · image``. TextureMNIST1 has one unshifted digit;
TextureMNIST2 two digits, one shifted by (−2, −2) (up-left) and one by (+2, +2), stacked in
random order. ``masks`` (N, K+1, 28, 28) are the per-pixel group weights (layer ``j``'s alpha
times ``1 - alpha`` of every layer above; they sum to 1); group 0 is the background. Digits
follow the MNIST split, each digit slot a random permutation of it.

Reconstructed (the notebook's RNG streams are not reproducible here): the phases come from
``texture_seed``; crops, texture choices, digit pairing and stacking order from ``seed``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from experiments.datasets._common import (
    ArrayBundle, BundleDataset, check_dtype, check_shape, entry, permuted_indices, split_streams,
)
from experiments.datasets.cache import generated_loader
from experiments.datasets.mnist import IMAGE_SIZE, mnist_source, split_size
from experiments.datasets.motion import shift_images
from experiments.datasets.paths import PathLike

NAME = "texture_mnist/v1"


@dataclasses.dataclass(frozen=True)
class TextureMNISTSettings:
    """``n_digits`` 1 (TextureMNIST1) or 2 (TextureMNIST2); Freq20 bank parameters."""

    n_digits: int = 2
    first_frequencies: Tuple[int, ...] = (4, 10, 21, 32, 37)
    second_frequencies: Tuple[int, ...] = (0, 4, 8, 12)
    shift: int = 2
    texture_seed: int = 546298  # reconstructed: the notebook's seed, fed to a different RNG

    def __post_init__(self) -> None:
        if self.n_digits not in (1, 2):
            raise ValueError(f"n_digits must be 1 or 2, got {self.n_digits}")
        n_tex = len(self.first_frequencies) * len(self.second_frequencies)
        if n_tex < self.n_digits + 1:
            raise ValueError(f"the bank has {n_tex} textures; need at least n_digits + 1")
        if self.shift < 0 or self.shift >= IMAGE_SIZE:
            raise ValueError(f"shift must be in [0, 28), got {self.shift}")
        if min(self.first_frequencies + self.second_frequencies) < 0:
            raise ValueError("frequencies must be non-negative")

    @property
    def shifts(self) -> Tuple[Tuple[int, int], ...]:
        """Per-digit (row, col) shift before random stacking: none for one digit."""
        return ((0, 0),) if self.n_digits == 1 else ((-self.shift, -self.shift), (self.shift, self.shift))


def texture_frequencies(settings: TextureMNISTSettings) -> np.ndarray:
    """(20, 2) int64 ``(f0, f1)``: ``(a_r, b + r)`` for ``r, a_r`` in the first factor, ``b`` in the second."""
    return np.array([(a, b + r) for r, a in enumerate(settings.first_frequencies)
                     for b in settings.second_frequencies], dtype=np.int64)


def texture_bank(settings: TextureMNISTSettings) -> np.ndarray:
    """(20, S, S) float32 in [0, 1], ``S = max frequency + 1`` (38 by default)."""
    freqs = texture_frequencies(settings)
    size = int(freqs.max()) + 1
    phases = np.random.default_rng(settings.texture_seed).random(len(freqs))
    coeffs = np.zeros((len(freqs), size, size), dtype=np.complex128)
    coeffs[np.arange(len(freqs)), freqs[:, 0], freqs[:, 1]] = np.exp(2j * np.pi * phases)
    spatial = np.real(np.fft.ifft2(coeffs))
    spatial -= spatial.min(axis=(1, 2), keepdims=True)
    spatial /= spatial.max(axis=(1, 2), keepdims=True)
    return spatial.astype(np.float32)


def compose(textures: np.ndarray, alphas: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Stack layers: textures (N, K+1, H, W) (0 = background), alphas (N, K, H, W) in [0, 1].

    Returns ``image`` (N, H, W) and group ``masks`` (N, K+1, H, W) summing to 1 per pixel.
    """
    image = textures[:, 0].copy()
    masks = np.ones(textures.shape, dtype=np.float32)
    for i in range(1, textures.shape[1]):
        a = alphas[:, i - 1]
        masks[:, :i] *= (1 - a)[:, None]
        masks[:, i] = a
        image = a * textures[:, i] + (1 - a) * image
    return image.astype(np.float32), masks


@dataclasses.dataclass(frozen=True)
class TextureMNIST(ArrayBundle):
    """images (N, 28, 28) float32 in [0, 1] · masks (N, K+1, 28, 28) float32 (group 0 = background,
    then digits bottom to top) · labels (N, K) int64 bottom to top · texture_ids (N, K+1) int8 ·
    crop_offsets (N, K+1, 2) int8 · shifts (N, K, 2) int8 · digit_index (N, K) int64."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    texture_ids: np.ndarray
    crop_offsets: np.ndarray
    shifts: np.ndarray
    digit_index: np.ndarray

    def __post_init__(self) -> None:
        n, h, w = self.images.shape
        k = self.labels.shape[-1]
        check_shape("images", self.images, (n, h, w), "(N, H, W)")
        check_shape("masks", self.masks, (n, k + 1, h, w), "(N, K+1, H, W)")
        check_shape("labels", self.labels, (n, k), "(N, K)")
        check_shape("texture_ids", self.texture_ids, (n, k + 1), "(N, K+1)")
        check_shape("crop_offsets", self.crop_offsets, (n, k + 1, 2), "(N, K+1, 2)")
        check_shape("shifts", self.shifts, (n, k, 2), "(N, K, 2)")
        check_shape("digit_index", self.digit_index, (n, k), "(N, K)")
        check_dtype("images", self.images, np.float32)
        check_dtype("masks", self.masks, np.float32)


def generate_texture_mnist(
    split: str = "train",
    n: Optional[int] = None,
    seed: int = 0,
    settings: Optional[TextureMNISTSettings] = None,
    data_dir: Optional[PathLike] = None,
) -> TextureMNIST:
    """Generate (no cache) ``n`` images (default: as many as the MNIST ``split`` has digits)."""
    settings = settings or TextureMNISTSettings()
    mnist, n, total = mnist_source(split, n, data_dir)
    size, k = len(mnist), settings.n_digits
    rng_digits, rng_order, rng_tex, rng_crop = split_streams(seed, split, 4)
    bank = texture_bank(settings)
    crop_max = bank.shape[-1] - IMAGE_SIZE
    if k == 1:  # TextureMNIST1: the split's digits in order
        slot_index = (np.arange(total) % size)[:, None]
    else:
        slot_index = np.stack([permuted_indices(rng_digits, size, total) for _ in range(k)], axis=1)
    # layer j (bottom to top) holds digit slot order[:, j]
    order = np.argsort(rng_order.random((total, k)), axis=1)[:n]
    texture_ids = np.argsort(rng_tex.random((total, len(bank))), axis=1)[:n, : k + 1]
    offsets = rng_crop.integers(0, crop_max + 1, size=(total, k + 1, 2))[:n]
    slot_alpha = np.stack([
        shift_images(mnist.images[slot_index[:n, j]].astype(np.float32) / 255.0, *settings.shifts[j])
        for j in range(k)], axis=1)
    rows = np.arange(n)[:, None]
    alphas = slot_alpha[rows, order]
    windows = sliding_window_view(bank, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2))
    textures = windows[texture_ids, offsets[..., 0], offsets[..., 1]]
    images, masks = compose(textures, alphas)
    digit_index = slot_index[:n][rows, order]
    return TextureMNIST(
        images=images, masks=masks, labels=mnist.labels[digit_index].astype(np.int64),
        texture_ids=texture_ids.astype(np.int8), crop_offsets=offsets.astype(np.int8),
        shifts=np.asarray(settings.shifts, dtype=np.int8)[order], digit_index=digit_index.astype(np.int64),
    )


def hard_groups(masks: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """(N, H, W) int8: the group whose mask exceeds ``threshold`` (SPEC §4: AMI over mask max > 0.9), else -1."""
    best = masks.argmax(axis=1).astype(np.int8)
    return np.where(masks.max(axis=1) > threshold, best, np.int8(-1)).astype(np.int8)


load_texture_mnist = generated_loader(NAME, TextureMNIST, TextureMNISTSettings, generate_texture_mnist, split_size)


class TextureMNISTDataset(BundleDataset):
    """Map-style wrapper; item ``i``: ``image`` (1, 28, 28) float32, ``masks`` (K+1, 28, 28) float32,
    ``labels`` (K,) int64 (bottom to top)."""

    ITEM = {"image": entry("images", channel=0), "masks": entry("masks"), "labels": entry("labels")}
