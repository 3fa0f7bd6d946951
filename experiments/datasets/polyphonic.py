"""Polyphonic music piano rolls (Boulanger-Lewandowski et al. 2012; SPEC §5, RLadder §4.1).

Each corpus is a ``.mat`` file with ``traindata`` / ``validdata`` / ``testdata``: lists of
``(T, 88)`` 0/1 ``uint8`` piano rolls, column ``j`` = MIDI note ``21 + j``, one time step per
eighth note. Split sizes (sequences): JSB Chorales 229/76/77, Nottingham 694/173/170,
MuseData 524/135/124, Piano-midi.de 87/12/25.
"""
from __future__ import annotations

import dataclasses
import pickle
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from experiments.datasets.paths import DataFileCorrupt, PathLike, verified_path

N_NOTES = 88
LOWEST_MIDI_NOTE = 21
CORPORA: Dict[str, str] = {
    "jsb_chorales": "polyphonic/JSB_Chorales.mat",
    "nottingham": "polyphonic/Nottingham.mat",
    "musedata": "polyphonic/MuseData.mat",
    "piano_midi": "polyphonic/Piano_midi.mat",
}
SPLIT_SIZES: Dict[str, Tuple[int, int, int]] = {
    "jsb_chorales": (229, 76, 77),
    "nottingham": (694, 173, 170),
    "musedata": (524, 135, 124),
    "piano_midi": (87, 12, 25),
}
JSB_PICKLE = "polyphonic/jsb_chorales.pickle"
_MAT_KEYS = {"train": "traindata", "valid": "validdata", "test": "testdata"}


@dataclasses.dataclass(frozen=True)
class PianoRolls:
    """A corpus: ``train`` / ``valid`` / ``test`` lists of ``(T, 88)`` uint8 0/1 arrays."""

    name: str
    train: List[np.ndarray]
    valid: List[np.ndarray]
    test: List[np.ndarray]

    def split(self, split: str) -> List[np.ndarray]:
        if split not in _MAT_KEYS:
            raise ValueError(f"split must be one of {sorted(_MAT_KEYS)}, got {split!r}")
        return getattr(self, split)


def _check_roll(roll: np.ndarray, where: str) -> np.ndarray:
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != N_NOTES or roll.shape[0] < 1:
        raise DataFileCorrupt(f"{where}: piano roll must have shape (T, 88), got {roll.shape}")
    if not np.isin(roll, (0, 1)).all():
        raise DataFileCorrupt(f"{where}: piano roll holds values other than 0/1")
    return np.ascontiguousarray(roll, dtype=np.uint8)


def load_polyphonic(
    corpus: str, data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None
) -> PianoRolls:
    """Load one of :data:`CORPORA` (``jsb_chorales``, ``nottingham``, ``musedata``, ``piano_midi``)."""
    if corpus not in CORPORA:
        raise ValueError(f"corpus must be one of {sorted(CORPORA)}, got {corpus!r}")
    from scipy.io import loadmat

    path = verified_path(CORPORA[corpus], data_dir, cache_dir)
    mat = loadmat(str(path))
    splits = {}
    for split, key in _MAT_KEYS.items():
        cells = np.asarray(mat[key]).reshape(-1)
        splits[split] = [_check_roll(r, f"{CORPORA[corpus]}[{key}][{i}]") for i, r in enumerate(cells)]
    return PianoRolls(corpus, **splits)


def notes_to_roll(steps: Sequence[Sequence[int]]) -> np.ndarray:
    """A list of time steps (each a tuple of MIDI notes 21..108) -> ``(T, 88)`` uint8 roll."""
    roll = np.zeros((len(steps), N_NOTES), dtype=np.uint8)
    for t, notes in enumerate(steps):
        for note in notes:
            roll[t, int(note) - LOWEST_MIDI_NOTE] = 1
    return roll


def load_jsb_pickle(data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None) -> PianoRolls:
    """JSB Chorales from the original-format pickle (verified by sha256 before unpickling)."""
    path = verified_path(JSB_PICKLE, data_dir, cache_dir)
    with open(path, "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    return PianoRolls("jsb_chorales", **{s: [notes_to_roll(seq) for seq in raw[s]] for s in _MAT_KEYS})


def pad_rolls(rolls: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Collate ``(T_i, 88)`` rolls into ``(B, T_max, 88)`` float32 (zero-padded) and lengths ``(B,)`` int64."""
    lengths = torch.tensor([int(r.shape[0]) for r in rolls], dtype=torch.int64)
    batch = torch.zeros((len(rolls), int(lengths.max()), N_NOTES), dtype=torch.float32)
    for i, r in enumerate(rolls):
        batch[i, : r.shape[0]] = torch.as_tensor(r, dtype=torch.float32)
    return batch, lengths


class PolyphonicDataset(Dataset):
    """Map-style piano rolls: item ``i`` is a ``(T_i, 88)`` float32 tensor; batch with :func:`pad_rolls`."""

    def __init__(self, corpus: str, split: str = "train", data_dir: Optional[PathLike] = None) -> None:
        self.rolls = load_polyphonic(corpus, data_dir).split(split)

    def __len__(self) -> int:
        return len(self.rolls)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.rolls[i].astype(np.float32))
