"""Brodatz-textured MNIST (RLadder §4.2; SPEC §5): patches, thickening, composition, masks."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from experiments.datasets import paths
from experiments.datasets.brodatz import load_brodatz_stack
from experiments.datasets.mnist import mnist_split
from experiments.datasets.brodatz_mnist import (
    DEFAULT_TEXTURES, BrodatzMNISTDataset, BrodatzMNISTSettings, generate_brodatz_mnist, load_brodatz_mnist,
    prepare_textures, sample_patches, thicken_digits,
)

requires_data = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent",
)
N = 300


@pytest.fixture(scope="module")
def data():
    return generate_brodatz_mnist("test", n=N, seed=41)


def test_patch_sampling_exact_cases():
    rng = np.random.default_rng(0)
    tex = rng.random((2, 60, 60)).astype(np.float32)
    centre = np.array([[30.5, 20.5]])  # half-integer centre: a 28-px grid lands on whole pixels
    crop = tex[1, 17:45, 7:35]
    plain = sample_patches(tex, np.array([1]), centre, np.array([0.0]), np.array([1.0]), 28)[0]
    assert np.allclose(plain, crop, atol=1e-6)
    turned = sample_patches(tex, np.array([1]), centre, np.array([np.pi / 2]), np.array([1.0]), 28)[0]
    assert np.allclose(turned, np.rot90(crop, -1), atol=1e-5)
    doubled = sample_patches(tex, np.array([0]), np.array([[30.0, 30.0]]), np.array([0.0]), np.array([2.0]), 28)[0]
    assert np.allclose(doubled, tex[0, 3:58:2, 3:58:2], atol=1e-6)


def test_thickening_is_a_grey_dilation():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10, 10], image[0, 20, 5] = 255, 102
    alpha = thicken_digits(image, 1)[0]
    assert np.allclose(alpha[9:12, 9:12], 1.0) and np.allclose(alpha[19:22, 4:7], 0.4)
    assert np.count_nonzero(alpha) == 18
    assert np.allclose(thicken_digits(image, 0)[0], image[0] / 255)


@requires_data
def test_prepare_textures():
    stack = load_brodatz_stack([1, 4])
    eq = prepare_textures(stack, 4, True)
    assert eq.shape == (2, 160, 160) and eq.min() == 0 and eq.max() == 1
    raw = prepare_textures(stack, 4, False)
    assert np.allclose(raw[0, 0, 0], stack[0, :4, :4].mean() / 255)
    assert np.array_equal(np.argsort(raw[1].ravel(), kind="stable"), np.argsort(eq[1].ravel(), kind="stable"))


@requires_data
def test_shapes_determinism_and_labels(data):
    assert data.images.shape == (N, 28, 28) and data.masks.shape == (N, 2, 28, 28)
    assert data.texture_ids.shape == data.angles.shape == data.scales.shape == (N, 2)
    again = generate_brodatz_mnist("test", n=N, seed=41)
    assert all(np.array_equal(a, b) for a, b in zip(data.to_arrays().values(), again.to_arrays().values()))
    assert np.array_equal(generate_brodatz_mnist("test", n=8, seed=41).images, data.images[:8])
    assert np.array_equal(data.labels, mnist_split("test").labels[:N])


@requires_data
def test_textures_rotations_and_scales(data):
    assert set(data.texture_ids.ravel().tolist()) <= set(DEFAULT_TEXTURES)
    assert np.all(data.texture_ids[:, 0] != data.texture_ids[:, 1])
    assert len(set(data.texture_ids.ravel().tolist())) == 20
    assert data.angles.min() >= 0 and data.angles.max() < 2 * np.pi
    assert data.scales.min() >= 0.7 - 1e-6 and data.scales.max() <= 1.4 + 1e-6
    assert data.angles.std() > 1 and data.scales.std() > 0.1


@requires_data
def test_masks_are_the_thickened_digit(data):
    alpha = thicken_digits(mnist_split("test").images[:N], 1)
    assert np.allclose(data.masks[:, 1], alpha) and np.allclose(data.masks.sum(axis=1), 1)
    assert (data.masks[:, 1] > 0).sum() > (mnist_split("test").images[:N] > 0).sum()  # thicker
    assert data.images.min() >= 0 and data.images.max() <= 1


@requires_data
def test_dataset_and_cache(data, tmp_path):
    item = BrodatzMNISTDataset(data)[1]
    assert item["image"].shape == (1, 28, 28) and item["masks"].shape == (2, 28, 28)
    assert item["label"].item() == data.labels[1] and item["image"].dtype == torch.float32
    cached = load_brodatz_mnist("test", n=10, seed=41, cache_dir=tmp_path)
    assert np.array_equal(cached.images, data.images[:10])


def test_settings_are_validated():
    with pytest.raises(ValueError, match="textures"):
        BrodatzMNISTSettings(textures=(1, 1))
    with pytest.raises(ValueError, match="textures"):
        BrodatzMNISTSettings(textures=(1, 200))
    with pytest.raises(ValueError, match="scale_range"):
        BrodatzMNISTSettings(scale_range=(1.5, 1.0))
