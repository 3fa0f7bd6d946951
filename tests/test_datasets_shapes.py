"""Shapes (Tagger; SPEC §5): templates, placement, binary images, overlap marking."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from experiments.datasets.shapes import (
    OVERLAP, SQUARE, TEMPLATES, TRIANGLE_DOWN, TRIANGLE_UP, ShapesDataset, ShapesSettings, generate_shapes,
    soft_masks,
)


@pytest.fixture(scope="module")
def data():
    return generate_shapes("valid", seed=8)  # the full 10k split


def test_templates_exactly():
    assert SQUARE.shape == (7, 7) and SQUARE.sum() == 49 - 9
    assert not SQUARE[2:5, 2:5].any() and SQUARE[[0, 1, 5, 6]].all() and SQUARE[:, [0, 1, 5, 6]].all()
    assert TRIANGLE_UP.shape == (7, 12)
    assert TRIANGLE_UP.sum(axis=1).tolist() == [2, 4, 6, 6, 6, 12, 12]
    assert TRIANGLE_UP[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert TRIANGLE_UP[4].tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    assert np.array_equal(TRIANGLE_UP, TRIANGLE_UP[:, ::-1])  # left-right symmetric
    assert np.array_equal(TRIANGLE_DOWN, TRIANGLE_UP[::-1])
    assert len(TEMPLATES) == 3


def test_sizes_and_determinism(data):
    assert data.images.shape == data.groups.shape == (10000, 20, 20)
    assert data.shape_ids.shape == (10000, 3) and data.positions.shape == (10000, 3, 2)
    assert set(np.unique(data.images)) <= {0, 1} and data.images.dtype == np.uint8
    assert len(generate_shapes("train", n=None, seed=0, settings=ShapesSettings(n_shapes=1))) == 50000
    small = generate_shapes("valid", n=25, seed=8)
    assert np.array_equal(small.images, data.images[:25]) and np.array_equal(small.groups, data.groups[:25])
    assert not np.array_equal(generate_shapes("valid", n=25, seed=9).images, small.images)


def test_uniform_choice_and_placement(data):
    counts = np.bincount(data.shape_ids.reshape(-1), minlength=3)
    assert np.all(np.abs(counts - 10000) < 400)  # 30000 draws, sd ≈ 82
    for sid, (h, w) in enumerate(t.shape for t in TEMPLATES):
        pos = data.positions[data.shape_ids == sid]
        assert pos[:, 0].min() == 0 and pos[:, 0].max() == 20 - h
        assert pos[:, 1].min() == 0 and pos[:, 1].max() == 20 - w


def test_images_and_groups_from_independent_drawing(data):
    for k in range(0, 10000, 97):
        count = np.zeros((20, 20), int)
        owner = np.zeros((20, 20), int)
        for j in range(3):
            t = TEMPLATES[data.shape_ids[k, j]]
            r, c = data.positions[k, j]
            count[r:r + t.shape[0], c:c + t.shape[1]] += t
            owner[r:r + t.shape[0], c:c + t.shape[1]][t == 1] = j + 1
        assert np.array_equal(data.images[k], (count > 0).astype(np.uint8))
        expected = np.where(count > 1, OVERLAP, np.where(count == 1, owner, 0))
        assert np.array_equal(data.groups[k], expected)
    assert (data.groups == OVERLAP).any()


def test_soft_masks_and_dataset(data):
    masks = soft_masks(data.groups[:50], 3)
    assert masks.shape == (50, 3, 20, 20) and np.allclose(masks.sum(axis=1), 1)
    unscored = data.groups[:50] <= 0
    assert np.allclose(masks.transpose(0, 2, 3, 1)[unscored], 1 / 3)
    item = ShapesDataset(data)[4]
    assert item["image"].shape == (1, 20, 20) and item["image"].dtype == torch.float32
    assert item["groups"].shape == (20, 20) and item["masks"].shape == (3, 20, 20)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="height"):
        ShapesSettings(height=6)
