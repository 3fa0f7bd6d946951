"""Moving MNIST with segmentation (RLadder §4.3; SPEC §5)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from experiments.datasets import paths
from experiments.datasets.mnist import mnist_split
from experiments.datasets.moving_mnist import (
    BACKGROUND, OVERLAP, MovingMNISTDataset, MovingMNISTSettings, generate_moving_mnist, load_moving_mnist,
)

pytestmark = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent",
)
N = 60


@pytest.fixture(scope="module")
def data():
    return generate_moving_mnist("test", n=N, seed=21)


def test_shapes_and_dtypes(data):
    assert data.frames.shape == data.segmentation.shape == (N, 20, 64, 64)
    assert data.frames.dtype == np.uint8 and data.segmentation.dtype == np.int8
    assert data.positions.shape == (N, 20, 2, 2) and data.labels.shape == data.digit_index.shape == (N, 2)


def test_deterministic_and_prefix_stable(data):
    again = generate_moving_mnist("test", n=N, seed=21)
    assert all(np.array_equal(a, b) for a, b in zip(data.to_arrays().values(), again.to_arrays().values()))
    assert np.array_equal(generate_moving_mnist("test", n=7, seed=21).frames, data.frames[:7])
    assert not np.array_equal(generate_moving_mnist("test", n=7, seed=22).positions, data.positions[:7])


def test_digits_stay_inside_and_move_at_constant_speed(data):
    assert data.positions.min() >= 0 and data.positions.max() <= 36
    step = np.diff(data.positions.astype(np.float64), axis=1)
    speed = np.hypot(step[..., 0], step[..., 1])
    previous = data.positions[:, :-1].astype(np.float64)
    free = ((previous > 3.6) & (previous < 32.4)).all(axis=-1)  # too far from a wall to bounce
    assert np.all(speed <= 3.6 + 1e-4)
    assert free.any() and np.allclose(speed[free], 3.6, atol=1e-4)


def test_frames_and_segmentation_from_independent_rendering(data):
    test = mnist_split("test")
    assert np.array_equal(data.labels, test.labels[data.digit_index])
    for k in range(0, N, 7):
        for t in (0, 9, 19):
            layers = np.zeros((2, 64, 64), np.uint8)
            for j in range(2):
                r, c = (int(round(float(x))) for x in data.positions[k, t, j])
                layers[j, r:r + 28, c:c + 28] = test.images[data.digit_index[k, j]]
            assert np.array_equal(data.frames[k, t], layers.max(axis=0))
            ink = layers >= 128
            expected = np.full((64, 64), BACKGROUND, np.int8)
            expected[ink[0] & ~ink[1]] = 1
            expected[ink[1] & ~ink[0]] = 2
            expected[ink[0] & ink[1]] = OVERLAP
            assert np.array_equal(data.segmentation[k, t], expected)
    assert (data.segmentation == OVERLAP).any() and (data.segmentation == 2).any()


def test_dataset_and_cache(data, tmp_path):
    item = MovingMNISTDataset(data)[2]
    assert item["frames"].shape == (20, 1, 64, 64) and item["frames"].dtype == torch.float32
    assert item["segmentation"].shape == (20, 64, 64) and item["labels"].tolist() == data.labels[2].tolist()
    cached = load_moving_mnist("test", n=5, seed=21, cache_dir=tmp_path)
    assert np.array_equal(cached.segmentation, data.segmentation[:5])


def test_settings_are_validated():
    with pytest.raises(ValueError, match="canvas_size"):
        MovingMNISTSettings(canvas_size=20)
    with pytest.raises(ValueError, match="speed"):
        MovingMNISTSettings(speed=100.0)
