"""TextureMNIST1/2 "Freq20" (Tagger; SPEC §5): the texture formula, crops, alpha composition, shifts."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from experiments.datasets import paths
from experiments.datasets.mnist import mnist_split
from experiments.datasets.motion import shift_images
from experiments.datasets.texture_mnist import (
    TextureMNISTDataset, TextureMNISTSettings, generate_texture_mnist, hard_groups, load_texture_mnist,
    texture_bank, texture_frequencies,
)

requires_data = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent",
)
N = 500


@pytest.fixture(scope="module")
def two():
    return generate_texture_mnist("test", n=N, seed=31)


def test_frequencies():
    expected = [(a, b + r) for r, a in enumerate([4, 10, 21, 32, 37]) for b in [0, 4, 8, 12]]
    freqs = texture_frequencies(TextureMNISTSettings())
    assert freqs.tolist() == [list(f) for f in expected]
    assert freqs.max() + 1 == 38 and len({tuple(f) for f in expected}) == 20


def test_bank_is_normalised_single_frequency_sinusoids():
    bank = texture_bank(TextureMNISTSettings())
    assert bank.shape == (20, 38, 38) and bank.dtype == np.float32
    assert np.allclose(bank.min(axis=(1, 2)), 0) and np.allclose(bank.max(axis=(1, 2)), 1)
    m, n = np.meshgrid(np.arange(38), np.arange(38), indexing="ij")
    for texture, (f0, f1) in zip(bank, texture_frequencies(TextureMNISTSettings())):
        spectrum = np.abs(np.fft.fft2(texture - texture.mean()))
        support = {tuple(ix) for ix in np.argwhere(spectrum > 1e-3 * spectrum.max())}
        assert support <= {(f0, f1), ((-f0) % 38, (-f1) % 38)}
        # a normalised cosine of that frequency: fit its phase and compare
        coeff = np.fft.fft2(texture)[f0, f1]
        wave = np.cos(2 * np.pi * (f0 * m + f1 * n) / 38 + np.angle(coeff))
        assert np.allclose(texture, (wave - wave.min()) / (wave.max() - wave.min()), atol=1e-5)
    flat = bank.reshape(20, -1)
    assert len({row.tobytes() for row in flat}) == 20
    assert np.array_equal(bank, texture_bank(TextureMNISTSettings()))


@requires_data
def test_shapes_and_determinism(two):
    assert two.images.shape == (N, 28, 28) and two.masks.shape == (N, 3, 28, 28)
    assert two.labels.shape == (N, 2) and two.texture_ids.shape == (N, 3)
    assert two.crop_offsets.shape == (N, 3, 2) and two.shifts.shape == (N, 2, 2)
    again = generate_texture_mnist("test", n=N, seed=31)
    assert all(np.array_equal(a, b) for a, b in zip(two.to_arrays().values(), again.to_arrays().values()))
    assert np.array_equal(generate_texture_mnist("test", n=9, seed=31).images, two.images[:9])
    assert not np.array_equal(generate_texture_mnist("test", n=9, seed=32).images, two.images[:9])


@requires_data
def test_composition_from_the_bank(two):
    bank = texture_bank(TextureMNISTSettings())
    windows = sliding_window_view(bank, (28, 28), axis=(1, 2))
    assert two.crop_offsets.min() >= 0 and two.crop_offsets.max() <= 10
    for k in range(0, N, 23):
        ids = two.texture_ids[k]
        assert len(set(ids.tolist())) == 3 and ids.min() >= 0 and ids.max() < 20
        crops = [windows[i, r, c] for i, (r, c) in zip(ids, two.crop_offsets[k])]
        assert np.allclose(two.images[k], sum(mk * ck for mk, ck in zip(two.masks[k], crops)), atol=1e-6)
    assert np.allclose(two.masks.sum(axis=1), 1, atol=1e-6)
    assert two.images.min() >= 0 and two.images.max() <= 1


@requires_data
def test_two_digits_shifted_in_random_order(two):
    test = mnist_split("test")
    shifts = {tuple(map(tuple, s)) for s in two.shifts.tolist()}
    assert shifts == {((-2, -2), (2, 2)), ((2, 2), (-2, -2))}
    assert np.array_equal(two.labels, test.labels[two.digit_index])
    for k in range(0, N, 31):
        alphas = [shift_images(test.images[i].astype(np.float32) / 255, *s)
                  for i, s in zip(two.digit_index[k], two.shifts[k])]
        assert np.allclose(two.masks[k, 2], alphas[1])  # the top digit is fully its alpha
        assert np.allclose(two.masks[k, 1], alphas[0] * (1 - alphas[1]))
        assert np.allclose(two.masks[k, 0], (1 - alphas[0]) * (1 - alphas[1]))
    # each digit slot is a permutation of the split
    full = generate_texture_mnist("test", seed=31)
    assert full.images.shape[0] == 10000
    up_left = np.where((full.shifts[:, :, 0] == -2), full.digit_index, -1).max(axis=1)
    assert np.array_equal(np.sort(up_left), np.arange(10000))


@requires_data
def test_texture_mnist1_unshifted_in_order():
    one = generate_texture_mnist("test", n=40, seed=3, settings=TextureMNISTSettings(n_digits=1))
    test = mnist_split("test")
    assert one.masks.shape == (40, 2, 28, 28) and one.labels.shape == (40, 1)
    assert np.array_equal(one.digit_index[:, 0], np.arange(40))
    assert np.array_equal(one.shifts, np.zeros((40, 1, 2)))
    assert np.allclose(one.masks[:, 1], test.images[:40] / 255)


@requires_data
def test_hard_groups_dataset_and_cache(two, tmp_path):
    groups = hard_groups(two.masks)
    assert groups.shape == (N, 28, 28) and set(np.unique(groups)) <= {-1, 0, 1, 2}
    assert np.array_equal(groups >= 0, two.masks.max(axis=1) > 0.9)
    item = TextureMNISTDataset(two)[0]
    assert item["image"].shape == (1, 28, 28) and item["masks"].shape == (3, 28, 28)
    assert item["labels"].dtype == torch.int64
    cached = load_texture_mnist("test", n=20, seed=31, cache_dir=tmp_path)
    assert np.array_equal(cached.masks, two.masks[:20])


def test_settings_are_validated():
    with pytest.raises(ValueError, match="n_digits"):
        TextureMNISTSettings(n_digits=3)
    with pytest.raises(ValueError, match="shift"):
        TextureMNISTSettings(shift=40)
