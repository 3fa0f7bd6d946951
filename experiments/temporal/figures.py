"""The figures of ``check temporal``: ``prediction.png``, a few evaluation sequences — the
clean observation process, the visible noisy observations, the occluded frames, and the
next-frame predictions of the Kalman filter (optimal) and of the RLadder; and
``frame_ratios.png``, every method's MSE / Kalman-optimal MSE against the frame."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_predictions(data, rladder_pred, path: Path, sequences=(0, 1, 2), units=(0, 1), title: str = "") -> None:
    """``data``: a :class:`~pgm_ladder.harness.PredictionEvalSet`; ``rladder_pred`` ``(n, T, n_0)`` (index
    ``t-1`` predicts frame ``t+1``). One row per sequence, one column per observed unit."""
    sequences = [s for s in sequences if s < data.size]
    units = [u for u in units if u < data.x_noisy.shape[-1]]
    fig, axes = plt.subplots(len(sequences), len(units), figsize=(5.2 * len(units), 2.4 * len(sequences)),
                             squeeze=False, sharex=True)
    T = data.x_noisy.shape[1]
    frames = list(range(1, T + 1))
    nxt = list(range(2, T + 2))
    for row, b in enumerate(sequences):
        for col, j in enumerate(units):
            ax = axes[row][col]
            ax.plot(nxt, data.x_next[b, :, j].tolist(), color="0.6", lw=1, label="clean x_t (t ≥ 2)")
            vis = data.visibility[b, :, j] > 0
            seen = [t for t, v in zip(frames, vis.tolist()) if v]
            hidden = [t for t, v in zip(frames, vis.tolist()) if not v]
            ax.plot(seen, data.x_noisy[b, vis, j].tolist(), "k.", ms=5, label="observed x̃_t")
            for t in hidden:
                ax.axvspan(t - 0.5, t + 0.5, color="tab:orange", alpha=0.15, lw=0)
            ax.plot(nxt, data.optimal[b, :, j].tolist(), color="tab:blue", lw=1.6, label="Kalman E[x_t|x̃_<t]")
            ax.plot(nxt, rladder_pred[b, :, j].double().tolist(), color="tab:red", ls="--", lw=1.4,
                    label="RLadder prediction")
            ax.set_title(f"sequence {b}, unit {j}  (shaded: occluded)", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("frame t")
    axes[0][0].legend(fontsize=7, ncol=2, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_frame_ratios(scores: dict, labels: dict, engines, path: Path, title: str = "") -> None:
    """Left: ``scores[m]["mse_ratio"]`` against the frame for every method ``m`` of ``labels``
    in ``scores`` (log scale); right: the learned ``engines`` alone, with bands of ± 1
    standard error (``mse_ratio_sem``, over sequences). Dotted: each pooled mean."""
    methods = [m for m in labels if m in scores]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, shown in zip(axes, (methods, [m for m in methods if m in engines])):
        for i, m in enumerate(shown):
            r, se = scores[m]["mse_ratio"], scores[m]["mse_ratio_sem"]
            t = list(range(1, len(r) + 1))
            color = f"C{methods.index(m)}"
            ax.plot(t, r, "o-", ms=3, color=color, label=f"{labels[m]} (mean {scores[m]['mean_mse_ratio']:.4f})")
            ax.fill_between(t, [a - b for a, b in zip(r, se)], [a + b for a, b in zip(r, se)], color=color, alpha=0.2)
            ax.axhline(scores[m]["mean_mse_ratio"], color=color, ls=":", lw=1)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("frame t (prediction of x_t+1)")
        ax.set_ylabel("MSE / Kalman-optimal MSE")
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    axes[0].set_title("all methods", fontsize=9)
    axes[1].set_title("learned engines, ± 1 s.e. over sequences", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
