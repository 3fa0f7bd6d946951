"""``figures/groupings.png`` of a ``shapes`` run: for a few eval images the corrupted input,
the clean image, the true groups and the engine's masks after every iteration, computed from
the corrupted input (so the AMIs under the panels are ``ami_corrupted``; the ``ami`` metric
runs the engine on the clean input).

True groups: each shape its colour, background black, overlaps white (neither is scored).
Masks: the pixel's colour is that of its ``argmax_k m_ik`` group, its brightness the
confidence ``max_k m_ik`` (``1/K`` dim, 1 full). Groups are exchangeable, so the estimated
groups are renamed to match the shapes (Hungarian assignment on the overlap over the scored
pixels, scipy); a group matched to no shape (``K = 4`` groups, 3 shapes) keeps a colour of
its own. Under every mask panel: the image's AMI after that iteration (scored pixels only).
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from scipy.optimize import linear_sum_assignment

from pgm_ladder import metrics
from pgm_ladder.harness import grouping as harness

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: shape 1, 2, 3, then the colours of unmatched groups
PALETTE = np.array([[0.9, 0.25, 0.2], [0.2, 0.6, 0.95], [0.95, 0.8, 0.2], [0.35, 0.8, 0.35],
                    [0.7, 0.4, 0.85], [0.95, 0.55, 0.15], [0.5, 0.5, 0.5], [0.2, 0.8, 0.8]])
OVERLAP_COLOUR = np.array([1.0, 1.0, 1.0])


def truth_rgb(groups: np.ndarray) -> np.ndarray:
    """``(N,)`` labels (``1..S`` shapes, 0 background, -1 overlap) -> ``(N, 3)`` colours."""
    rgb = np.zeros((groups.size, 3))
    shape = groups > 0
    rgb[shape] = PALETTE[(groups[shape] - 1) % len(PALETTE)]
    rgb[groups < 0] = OVERLAP_COLOUR
    return rgb


def brightness(confidence: np.ndarray, groups: int) -> np.ndarray:
    """``max_k m_ik`` in ``[1/K, 1]`` mapped linearly to ``[0.25, 1]``."""
    low = 1.0 / groups
    return 0.25 + 0.75 * np.clip((confidence - low) / max(1.0 - low, 1e-12), 0.0, 1.0)


def matched_labels(truth: np.ndarray, probs: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """``argmax_k probs`` ``(K, N)`` renamed so that group ``k`` matched to shape ``s`` reads
    ``s - 1`` (matched on the ``scored`` pixels); unmatched groups take the next labels."""
    est = probs.argmax(0)
    k = probs.shape[0]
    shapes = max(int(truth.max()), 0)
    overlap = np.zeros((k, max(shapes, 1)))
    if scored.any():
        np.add.at(overlap, (est[scored], truth[scored] - 1), 1.0)
    rows, cols = linear_sum_assignment(-overlap)
    rename = np.full(k, -1)
    rename[rows] = cols
    spare = iter(range(overlap.shape[1], overlap.shape[1] + k))
    for g in range(k):
        if rename[g] < 0:
            rename[g] = next(spare)
    return rename[est]


def plot_groupings(net, data: harness.GroupingEvalSet, images: int, iterations: int, device,
                   path: Path, title: str = "") -> None:
    """Run ``net`` for ``iterations`` on the first ``images`` of ``data`` and draw the figure."""
    n = max(1, min(images, data.size))
    sub = harness.GroupingEvalSet(data.x[:n], data.x_noisy[:n], data.z[:n], data.init_seed,
                                  None if data.true_mask_max is None else data.true_mask_max[:n])
    masks, _, _ = harness.engine_groupings(net, sub, iterations, device)
    amis = [metrics.grouping_scores(sub.z, m, sub.true_mask_max)["ami_per_sample"] for m in masks]
    pixels = data.x.shape[1]
    side = int(round(pixels ** 0.5))
    shape = (side, pixels // side)
    scored = (np.ones((n, pixels), dtype=bool) if sub.true_mask_max is None
              else sub.true_mask_max.numpy() > 0.9)
    cols = ["x̃ (input)", "x (clean)", "true groups"] + [f"iter {t}" for t in range(1, iterations + 1)]
    fig, axes = plt.subplots(n, len(cols), figsize=(1.5 * len(cols), 1.6 * n), squeeze=False)
    for r in range(n):
        truth = sub.z[r].numpy()
        panels = [(sub.x_noisy[r].reshape(shape).numpy(), "gray"), (sub.x[r].reshape(shape).numpy(), "gray"),
                  (truth_rgb(truth).reshape(*shape, 3), None)]
        for t in range(iterations):
            probs = masks[t][r].numpy()
            labels = matched_labels(truth, probs, scored[r])
            rgb = PALETTE[labels % len(PALETTE)] * brightness(probs.max(0), probs.shape[0])[:, None]
            panels.append((rgb.reshape(*shape, 3), None))
        for c, (img, cmap) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= 3:
                ax.set_xlabel(f"AMI {amis[c - 3][r]:.2f}", fontsize=7)
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
