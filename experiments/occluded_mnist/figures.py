"""The paper's Figure 4 (RLadder §3.1): for a few test sequences, per frame ``t``: the
ground-truth unoccluded digit, the observed (occluded) frame, the RLadder's prediction made
after frame ``t`` (of frame ``t+1``), and a stopped-gradient probe of the bottom decoder.

The probe (ours where the paper is silent): a linear 3×3 convolution from ``d_0,t`` to the
unoccluded frame ``t+1`` (what the neurons that predict the next frame would show without
occlusion), fitted by ridge least squares on training sequences with the RLadder frozen —
a readout trained on the ground truth whose gradient never reaches the RLadder.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from experiments.datasets.occluded_moving_mnist import render_clean
from learned_inference.conv_rladder import ConvRLadder

from .data import Sequences


def clean_frames(data: Sequences) -> torch.Tensor:
    """``(N, T, 1, H, W)`` float: the unoccluded digit in every frame (needs ``data.source``)."""
    if data.source is None:
        raise ValueError("clean_frames: the sequences were loaded without their source bundle")
    return torch.from_numpy(render_clean(data.source)).unsqueeze(2).float() / 255.0


@torch.no_grad()
def run(engine: ConvRLadder, data: Sequences, device, chunk: int = 128):
    """``(predictions, class probabilities (N, T, K) or None, bottom)`` on the CPU."""
    preds, probs, bottom = [], [], []
    for s in range(0, len(data), chunk):
        frames = data.batch(torch.arange(s, min(s + chunk, len(data))))["frames"].to(device)
        out = engine(frames, return_bottom=True)
        preds.append(out.predictions.cpu())
        bottom.append(out.bottom.cpu())
        if out.class_logits is not None:
            probs.append(out.class_logits.softmax(-1).cpu())
    return torch.cat(preds), (torch.cat(probs) if probs else None), torch.cat(bottom)


def fit_probe(bottom: torch.Tensor, target: torch.Tensor, ridge: float = 1e-3):
    """Least-squares 3×3 conv ``(1, c_0, 3, 3)`` + bias from ``bottom`` ``(N, T', c_0, H, W)``
    to ``target`` ``(N, T', 1, H, W)`` (normal equations, accumulated in chunks)."""
    c0 = bottom.shape[2]
    x, y = bottom.flatten(0, 1).double(), target.flatten(0, 1).double()
    dim = 9 * c0 + 1
    xtx, xty = torch.zeros(dim, dim, dtype=torch.float64), torch.zeros(dim, 1, dtype=torch.float64)
    for s in range(0, len(x), 64):
        cols = F.unfold(x[s:s + 64], 3, padding=1).transpose(1, 2).reshape(-1, 9 * c0)
        cols = torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], 1)
        xtx += cols.T @ cols
        xty += cols.T @ y[s:s + 64].reshape(-1, 1)
    w = torch.linalg.solve(xtx + ridge * len(x) * torch.eye(dim, dtype=xtx.dtype), xty)
    return w[:-1].reshape(1, c0, 3, 3).float(), w[-1].float()


def figure4(engine: ConvRLadder, test: Sequences, probe_train: Sequences, path: Path, device,
            n_sequences: int = 4, title: str = "") -> None:
    """Write the figure (one block of four rows per test sequence) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engine.eval()
    _, _, bottom = run(engine, probe_train, device)
    weight, bias = fit_probe(bottom[:, :-1], clean_frames(probe_train)[:, 1:])
    shown = Sequences(test.frames[:n_sequences], test.optimal[:n_sequences], test.labels[:n_sequences],
                      test.source.subset(list(range(min(n_sequences, len(test))))))
    preds, probs, bottom = run(engine, shown, device)
    probe = F.conv2d(bottom.flatten(0, 1), weight, bias, padding=1).view_as(preds).clamp(0, 1)
    truth, frames = clean_frames(shown), shown.batch(torch.arange(len(shown)))["frames"]
    rows = [("ground truth", truth), ("observed", frames), ("predicted next", preds), ("probe", probe)]
    n, T = frames.shape[:2]
    fig, axes = plt.subplots(4 * n, T, figsize=(1.3 * T + 1.2, 1.3 * 4 * n), squeeze=False)
    for b in range(n):
        for r, (name, images) in enumerate(rows):
            for t in range(T):
                ax = axes[4 * b + r][t]
                ax.imshow(1.0 - images[b, t, 0].numpy(), cmap="gray", vmin=0, vmax=1)  # white canvas
                ax.set_xticks([])
                ax.set_yticks([])
                if t == 0:
                    ax.set_ylabel(name, fontsize=7)
                if r == 0:
                    head = f"t={t + 1}"
                    if probs is not None:
                        p, c = probs[b, t].max(0)
                        head += f"  '{int(c)}' {float(p):.2f}"
                    ax.set_title(head if b == 0 or probs is not None else "", fontsize=7)
        axes[4 * b][0].set_ylabel(f"seq {b} (digit {int(shown.labels[b])})\nground truth", fontsize=7)
    fig.suptitle(title or "Occluded Moving MNIST: RLadder predictions and bottom-decoder probe", fontsize=9)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(path, dpi=100)
    plt.close(fig)
