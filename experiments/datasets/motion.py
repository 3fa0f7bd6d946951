"""Vectorised sprite motion and rendering shared by the moving-digit generators (RLadder §3.1, §4.3).

Positions are the top-left corner ``(row, col)`` of a square sprite on a square canvas. A
sprite bounces off the canvas edges: after each step ``p <- p + v``, a coordinate that left
``[0, limit]`` is reflected back (``p <- -p`` or ``p <- 2 limit - p``) and that velocity
component changes sign, so the sprite always stays entirely inside the canvas.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def bounce(start: np.ndarray, velocity: np.ndarray, n_frames: int, limit: float) -> Tuple[np.ndarray, np.ndarray]:
    """Bouncing trajectories.

    ``start`` (N, 2) positions in ``[0, limit]`` and ``velocity`` (N, 2) with ``|v| <= limit``
    -> ``positions`` (N, T, 2) and ``velocities`` (N, T, 2), where ``velocities[:, t]`` is the
    velocity that moves frame ``t`` to frame ``t + 1`` (``velocities[:, 0]`` is ``velocity``).
    Integer inputs give integer trajectories.
    """
    start = np.asarray(start)
    velocity = np.asarray(velocity)
    if start.ndim != 2 or start.shape[1] != 2 or velocity.shape != start.shape:
        raise ValueError(f"start and velocity must both have shape (N, 2), got {start.shape}, {velocity.shape}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if np.any(start < 0) or np.any(start > limit):
        raise ValueError(f"start positions must lie in [0, {limit}]")
    if np.any(np.abs(velocity) > limit):
        raise ValueError(f"|velocity| must be <= the position range {limit} for a single reflection")
    dtype = np.result_type(start, velocity)
    positions = np.empty((start.shape[0], n_frames, 2), dtype=dtype)
    velocities = np.empty_like(positions)
    p, v = start.astype(dtype), velocity.astype(dtype)
    for t in range(n_frames):
        positions[:, t], velocities[:, t] = p, v
        p = p + v
        low, high = p < 0, p > limit
        p = np.where(low, -p, np.where(high, 2 * limit - p, p))
        v = np.where(low | high, -v, v)
    return positions, velocities


def paste(sprites: np.ndarray, rows: np.ndarray, cols: np.ndarray, canvas_size: int) -> np.ndarray:
    """Sprites ``(M, S, S)`` placed at integer top-left ``(rows, cols)`` (M,) on blank ``(M, H, H)`` canvases."""
    m, s = sprites.shape[0], sprites.shape[1]
    rows, cols = _check_corners(rows, cols, m, canvas_size - s)
    canvas = np.zeros((m, canvas_size, canvas_size), dtype=sprites.dtype)
    windows = sliding_window_view(canvas, (s, s), axis=(1, 2), writeable=True)
    windows[np.arange(m), rows, cols] = sprites
    return canvas


def crop(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """``(M, size, size)`` windows at top-left ``(rows, cols)`` of ``images`` (M, H, W) or of one image (H, W)."""
    m = rows.shape[0]
    if images.ndim == 2:
        rows, cols = _check_corners(rows, cols, m, min(images.shape) - size)
        return sliding_window_view(images, (size, size))[rows, cols].copy()
    rows, cols = _check_corners(rows, cols, m, min(images.shape[1:]) - size)
    return sliding_window_view(images, (size, size), axis=(1, 2))[np.arange(m), rows, cols].copy()


def _check_corners(rows, cols, m: int, limit: int):
    rows = np.asarray(rows).astype(np.int64)
    cols = np.asarray(cols).astype(np.int64)
    if rows.shape != (m,) or cols.shape != (m,):
        raise ValueError(f"rows and cols must have shape ({m},), got {rows.shape}, {cols.shape}")
    if limit < 0 or rows.min(initial=0) < 0 or cols.min(initial=0) < 0 or max(
        rows.max(initial=0), cols.max(initial=0)
    ) > limit:
        raise ValueError(f"sprite corners must lie in [0, {limit}]")
    return rows, cols


def shift_images(images: np.ndarray, d_row: int, d_col: int) -> np.ndarray:
    """Shift ``(..., H, W)`` images by whole pixels (down/right positive), filling with zeros."""
    out = np.zeros_like(images)
    h, w = images.shape[-2:]
    src_r = slice(max(0, -d_row), h - max(0, d_row))
    dst_r = slice(max(0, d_row), h - max(0, -d_row))
    src_c = slice(max(0, -d_col), w - max(0, d_col))
    dst_c = slice(max(0, d_col), w - max(0, -d_col))
    out[..., dst_r, dst_c] = images[..., src_r, src_c]
    return out
