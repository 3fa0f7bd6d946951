"""Occluded Moving MNIST (RLadder §3.1; SPEC §5): bars, motion, optimal temporal reconstruction."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from experiments.datasets import paths
from experiments.datasets.mnist import mnist_split
from experiments.datasets.motion import bounce
from experiments.datasets.occluded_moving_mnist import (
    OccludedMovingMNISTDataset, OccludedMovingMNISTSettings, bar_mask, generate_occluded_moving_mnist,
    load_occluded_moving_mnist, render, render_clean,
)

requires_data = pytest.mark.skipif(
    not (paths.SIBLING_DATA_DIR.is_dir() or os.environ.get(paths.DATA_ENV)),
    reason="real data files (../shared/data or PGM_LADDER_DATA) absent",
)
VELOCITIES = {(1, 2), (1, -2), (-1, 2), (-1, -2), (2, 1), (2, -1), (-2, 1), (-2, -1)}


@pytest.fixture(scope="module")
def data():
    return generate_occluded_moving_mnist("test", n=400, seed=11)


def _runs(flags):
    """Run lengths of a 1-D boolean sequence as (value, length) pairs."""
    runs, start = [], 0
    for i in range(1, len(flags) + 1):
        if i == len(flags) or flags[i] != flags[start]:
            runs.append((bool(flags[start]), i - start))
            start = i
    return runs


def test_default_bars_are_4_wide_with_8_visible_between():
    mask = bar_mask(OccludedMovingMNISTSettings())
    assert mask.shape == (32, 32)
    on_row = mask.all(axis=1)  # horizontal bars are whole rows
    on_col = mask.all(axis=0)
    assert _runs(on_row) == _runs(on_col) == [(False, 8), (True, 4), (False, 8), (True, 4), (False, 8)]
    assert np.array_equal(mask, on_row[:, None] | on_col[None, :])


def test_bars_for_other_geometry():
    s = OccludedMovingMNISTSettings(canvas_size=64, digit_size=20, bar_width=3, bar_gap=5, bar_offset=2)
    runs = _runs(bar_mask(s).all(axis=1))
    inner = runs[1:-1]
    assert runs[0] == (False, 2)
    assert all(length == 3 for on, length in inner if on)
    assert all(length == 5 for on, length in inner if not on)


def test_bounce_reflects_at_the_edges():
    pos, vel = bounce(np.array([[15, 1]]), np.array([[2, -2]]), 4, 16)
    assert pos[0].tolist() == [[15, 1], [15, 1], [13, 3], [11, 5]]
    assert vel[0].tolist() == [[2, -2], [-2, 2], [-2, 2], [-2, 2]]
    with pytest.raises(ValueError, match="velocity"):
        bounce(np.array([[0, 0]]), np.array([[5, 0]]), 3, 4)


@requires_data
def test_shapes_and_dtypes(data):
    n, t, h, s = 400, 5, 32, 16
    assert data.frames.shape == data.reconstruction.shape == (n, t, h, h)
    assert data.visible.shape == (n, t, s, s) and data.visible.dtype == bool
    assert data.digits.shape == (n, s, s) and data.positions.shape == data.velocities.shape == (n, t, 2)
    assert data.labels.shape == (n,) and data.frames.dtype == np.uint8
    assert data.seen.shape == (n, s, s) and data.optimal_reconstruction.shape == (n, h, h)


@requires_data
def test_deterministic_prefix_stable_and_seed_dependent(data):
    again = generate_occluded_moving_mnist("test", n=400, seed=11)
    for a, b in zip(data.to_arrays().values(), again.to_arrays().values()):
        assert np.array_equal(a, b)
    prefix = generate_occluded_moving_mnist("test", n=30, seed=11)
    assert np.array_equal(prefix.frames, data.frames[:30])
    other = generate_occluded_moving_mnist("test", n=30, seed=12)
    assert not np.array_equal(other.positions, prefix.positions)


@requires_data
def test_labels_follow_the_mnist_split(data):
    test = mnist_split("test")
    assert np.array_equal(data.digit_index, np.arange(400))
    assert np.array_equal(data.labels, test.labels[:400])
    valid = generate_occluded_moving_mnist("valid", n=5, seed=0)
    assert np.array_equal(valid.labels, mnist_split("valid").labels[:5])


@requires_data
def test_motion_stays_inside_and_uses_the_eight_velocities(data):
    assert data.positions.min() >= 0 and data.positions.max() <= 32 - 16
    assert {tuple(v) for v in data.velocities.reshape(-1, 2).tolist()} == VELOCITIES
    p, v = data.positions.astype(int), data.velocities.astype(int)
    free = p[:, :-1] + v[:, :-1]  # where the digit would be without walls
    hit = (free < 0) | (free > 16)
    assert hit.any() and not hit.all()
    assert np.array_equal(p[:, 1:], np.where(free < 0, -free, np.where(free > 16, 32 - free, free)))
    assert np.array_equal(v[:, 1:], np.where(hit, -v[:, :-1], v[:, :-1]))

@requires_data
def test_frames_are_the_digit_minus_the_bars(data):
    clean = render_clean(data)
    bars = bar_mask(OccludedMovingMNISTSettings())
    assert np.all(data.frames[:, :, bars] == 0)
    assert np.array_equal(data.frames[:, :, ~bars], clean[:, :, ~bars])


def _brute_force_reconstruction(digit, positions, bars):
    """Independent loop: mark digit pixels lying on visible canvas pixels, cumulatively."""
    s, h = digit.shape[0], bars.shape[0]
    seen = np.zeros((s, s), bool)
    out = []
    for (row, col) in positions:
        for r in range(h):
            for c in range(h):
                i, j = r - row, c - col
                if 0 <= i < s and 0 <= j < s and not bars[r, c]:
                    seen[i, j] = True
        canvas = np.zeros((h, h), np.uint8)
        canvas[row:row + s, col:col + s] = np.where(seen, digit, 0)
        out.append(canvas)
    return np.stack(out), seen


def test_reconstruction_on_a_tiny_example():
    s = OccludedMovingMNISTSettings(canvas_size=12, digit_size=4, bar_width=2, bar_gap=4, bar_offset=4,
                                    n_frames=3, velocities=((0, 2),))
    digit = (np.arange(16, dtype=np.uint8).reshape(4, 4) + 1) * 10
    positions = np.array([[[0, 0], [0, 2], [0, 4]], [[3, 5], [5, 6], [7, 7]]])
    frames, recon, visible = render(np.stack([digit, digit]), positions, s)
    bars = bar_mask(s)
    for k in range(2):
        expected, seen = _brute_force_reconstruction(digit, positions[k], bars)
        assert np.array_equal(recon[k], expected)
        assert np.array_equal(visible[k].any(axis=0), seen)
    # first sample: columns 4-5 are a bar; the digit's columns 0-3 pass over it
    assert visible[0, 0].all(axis=0).tolist() == [True, True, True, True]
    assert visible[0, 1].any(axis=0).tolist() == [True, True, False, False]
    assert visible[0, 2].any(axis=0).tolist() == [False, False, True, True]
    assert recon[0, 2, 0:4, 4:8].tolist() == digit.tolist()  # everything was seen by frame 2


@requires_data
def test_reconstruction_is_the_union_of_what_was_visible(data):
    bars = bar_mask(OccludedMovingMNISTSettings())
    for k in range(0, 400, 37):
        expected, seen = _brute_force_reconstruction(data.digits[k], data.positions[k], bars)
        assert np.array_equal(data.reconstruction[k], expected)
        assert np.array_equal(data.seen[k], seen)
    # every observed ink pixel is in the reconstruction of the same frame, with the same value
    ink = data.frames > 0
    assert np.array_equal(data.reconstruction[ink], data.frames[ink])
    assert np.all(data.reconstruction >= data.frames)


@requires_data
def test_dataset_items(data):
    ds = OccludedMovingMNISTDataset(data)
    item = ds[3]
    assert item["frames"].shape == item["reconstruction"].shape == item["clean"].shape == (5, 1, 32, 32)
    assert item["frames"].dtype == torch.float32 and item["visible"].shape == (5, 16, 16)
    assert torch.allclose(item["frames"][:, 0], 1 - torch.from_numpy(data.frames[3]).float() / 255)
    assert item["label"].item() == data.labels[3]
    black = OccludedMovingMNISTDataset(data, white_canvas=False)[3]
    assert torch.allclose(black["frames"] + item["frames"], torch.ones(5, 1, 32, 32))


@requires_data
def test_cached_load_equals_generation(tmp_path):
    cached = load_occluded_moving_mnist("test", n=50, seed=4, cache_dir=tmp_path)
    fresh = generate_occluded_moving_mnist("test", n=50, seed=4)
    assert np.array_equal(cached.reconstruction, fresh.reconstruction)
    assert np.array_equal(load_occluded_moving_mnist("test", n=50, seed=4, cache_dir=tmp_path).frames, fresh.frames)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="digit_size"):
        OccludedMovingMNISTSettings(digit_size=40)
    with pytest.raises(ValueError, match="velocities"):
        OccludedMovingMNISTSettings(velocities=((1, 2), (1, 2)))
    with pytest.raises(ValueError, match="bar_width"):
        OccludedMovingMNISTSettings(bar_width=0)
