"""``groupings.png`` of ``check mixture``: inputs, true groups and each method's groups.

Groups are exchangeable, so each method's labels are matched to the true ones (Hungarian
assignment on pixel overlap, scipy) before colouring; a pixel's colour is its group's and
its brightness the method's confidence ``max_k π_ik``.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = (("tagger", "Tagger"), ("rtagger", "RTagger"), ("vb", "VB (same iters)"),
           ("vb_converged", "VB converged"), ("gold", "gold (NUTS)"))
PALETTE = np.array([[0.85, 0.2, 0.2], [0.2, 0.6, 0.9], [0.95, 0.8, 0.2], [0.3, 0.75, 0.3],
                    [0.6, 0.35, 0.8], [0.9, 0.5, 0.1]])


def matched_labels(truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Estimated labels ``argmax_k probs`` renamed to best match ``truth`` (one image)."""
    est = probs.argmax(0)
    k = max(probs.shape[0], int(truth.max()) + 1)
    overlap = np.zeros((k, k))
    np.add.at(overlap, (est, truth), 1.0)
    rows, cols = linear_sum_assignment(-overlap)
    rename = np.arange(k)
    rename[rows] = cols
    return rename[est]


def colour(labels: np.ndarray, confidence: np.ndarray, shape) -> np.ndarray:
    rgb = PALETTE[labels % len(PALETTE)] * confidence[:, None]
    return rgb.reshape(*shape, 3)


def plot_groupings(data, shown: dict, path: Path, title: str, images: int = 6) -> None:
    side = int(round(data.x.shape[1] ** 0.5))
    shape = (side, data.x.shape[1] // side)
    cols = [("input", "x̃ (input)"), ("truth", "true groups")] + [c for c in COLUMNS if c[0] in shown]
    n = min(images, data.size, shown["gold"].shape[0] if "gold" in shown else data.size)
    fig, axes = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.6 * n), squeeze=False)
    for r in range(n):
        truth = data.z[r].numpy()
        for c, (key, label) in enumerate(cols):
            ax = axes[r][c]
            if key == "input":
                ax.imshow(data.x_noisy[r].reshape(shape).numpy(), cmap="gray")
            elif key == "truth":
                ax.imshow(colour(truth, np.ones(truth.shape), shape))
            else:
                probs = torch.as_tensor(shown[key][r]).double().numpy()
                ax.imshow(colour(matched_labels(truth, probs), probs.max(0), shape))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
