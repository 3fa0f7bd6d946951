"""The piano-roll figure: a test sequence's notes above the model's predicted probability of
each note at each step, given the steps before it (``figures/pianoroll.png``)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

from experiments.datasets.polyphonic import LOWEST_MIDI_NOTE

from . import data as poly_data

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@torch.no_grad()
def predicted_probabilities(model: torch.nn.Module, roll: np.ndarray, device: torch.device) -> np.ndarray:
    """``(T, 88)`` probability of each note at each step of ``roll`` given the steps before."""
    rolls = torch.from_numpy(np.asarray(roll, dtype=np.float32))[None].to(device)
    was_training = model.training
    model.eval()
    probs = torch.sigmoid(model(poly_data.shift_right(rolls)))[0]
    model.train(was_training)
    return probs.cpu().numpy()


def pianoroll(model: torch.nn.Module, roll: np.ndarray, path: Path, device: torch.device,
              steps: int, title: str = "") -> None:
    """Draw the first ``steps`` steps of ``roll`` and the predicted probabilities."""
    roll = np.asarray(roll)[:steps]
    probs = predicted_probabilities(model, roll, device)
    sounding = np.flatnonzero(roll.any(0))
    lo, hi = ((max(0, sounding.min() - 4), min(roll.shape[1], sounding.max() + 5)) if sounding.size
              else (0, roll.shape[1]))
    extent = (-0.5, len(roll) - 0.5, LOWEST_MIDI_NOTE + lo - 0.5, LOWEST_MIDI_NOTE + hi - 0.5)
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    axes[0].imshow(roll[:, lo:hi].T, origin="lower", aspect="auto", cmap="Greys", extent=extent)
    axes[0].set_title("test piano roll" + (f" — {title}" if title else ""))
    image = axes[1].imshow(probs[:, lo:hi].T, origin="lower", aspect="auto", cmap="viridis",
                           vmin=0, vmax=1, extent=extent)
    axes[1].set_title("predicted probability of each note given the steps before it")
    axes[1].set_xlabel("time step (eighth notes)")
    for ax in axes:
        ax.set_ylabel("MIDI note")
    fig.colorbar(image, ax=axes, shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
