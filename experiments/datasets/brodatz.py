"""Brodatz texture album D1–D112 from the GIF scans (SPEC §5), verified by sha256.

Each image is ``(640, 640) uint8`` grey levels (the GIFs are 8-bit grayscale; a palette image
is mapped through its palette, which must have R = G = B). Reading GIFs needs Pillow (a
dependency of matplotlib).
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from experiments.datasets.paths import DataFileCorrupt, PathLike, verified_path

BRODATZ_IDS: Tuple[int, ...] = tuple(range(1, 113))
BRODATZ_SIZE = 640

_MEMO: Dict[str, np.ndarray] = {}


def brodatz_relpath(texture_id: int) -> str:
    if int(texture_id) not in BRODATZ_IDS:
        raise ValueError(f"texture_id must be in 1..112 (Brodatz D1–D112), got {texture_id!r}")
    return f"brodatz/D{int(texture_id)}.gif"


def _decode_gif(path, relpath: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode == "P":
            palette = np.asarray(image.getpalette(), dtype=np.int64).reshape(-1, 3)
            if not ((palette[:, 0] == palette[:, 1]) & (palette[:, 1] == palette[:, 2])).all():
                raise DataFileCorrupt(f"{relpath}: palette is not grayscale")
            grey = palette[np.asarray(image), 0].astype(np.uint8)
        elif image.mode == "L":
            grey = np.asarray(image, dtype=np.uint8)
        else:
            raise DataFileCorrupt(f"{relpath}: unexpected image mode {image.mode}")
    if grey.shape != (BRODATZ_SIZE, BRODATZ_SIZE):
        raise DataFileCorrupt(f"{relpath}: expected 640×640, got {grey.shape}")
    return grey


def load_brodatz(
    texture_id: int, data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None
) -> np.ndarray:
    """Brodatz texture ``D<texture_id>`` as a read-only ``(640, 640) uint8`` array."""
    relpath = brodatz_relpath(texture_id)
    path = verified_path(relpath, data_dir, cache_dir)
    key = str(path.resolve())
    if key not in _MEMO:
        grey = _decode_gif(path, relpath)
        grey.flags.writeable = False
        _MEMO[key] = grey
    return _MEMO[key]


def load_brodatz_stack(
    texture_ids: Iterable[int], data_dir: Optional[PathLike] = None, cache_dir: Optional[PathLike] = None
) -> np.ndarray:
    """Several textures stacked: ``(K, 640, 640) uint8`` in the order of ``texture_ids``."""
    return np.stack([load_brodatz(t, data_dir, cache_dir) for t in texture_ids])
