"""The papers' data sets (SPEC §5); see ``docs/datasets.md``.

Verified loaders of real files (nothing is ever downloaded):
:func:`load_mnist` / :func:`mnist_split`, :func:`load_polyphonic`, :func:`load_brodatz`.

Deterministic, cached generators (``generate_*`` without cache, ``load_*`` through the
``.npz`` cache), each with a settings dataclass and a map-style torch ``Dataset``:
Occluded Moving MNIST, Moving MNIST with segmentation, Shapes, TextureMNIST1/2 (Tagger's
sinusoid textures, ``texture_mnist``) and Brodatz-textured MNIST (``brodatz_mnist``).
"""
from experiments.datasets.brodatz import BRODATZ_IDS, load_brodatz, load_brodatz_stack
from experiments.datasets.brodatz_mnist import (
    BrodatzMNIST, BrodatzMNISTDataset, BrodatzMNISTSettings, generate_brodatz_mnist, load_brodatz_mnist,
)
from experiments.datasets.cache import CacheCorrupt, cache_path, load_or_generate
from experiments.datasets.mnist import MnistDataset, MnistSplit, load_mnist, mnist_split
from experiments.datasets.moving_mnist import (
    MovingMNIST, MovingMNISTDataset, MovingMNISTSettings, generate_moving_mnist, load_moving_mnist,
)
from experiments.datasets.occluded_moving_mnist import (
    OccludedMovingMNIST, OccludedMovingMNISTDataset, OccludedMovingMNISTSettings, bar_mask,
    generate_occluded_moving_mnist, load_occluded_moving_mnist, render_clean,
)
from experiments.datasets.paths import (
    CACHE_ENV, DATA_ENV, DataFileCorrupt, DataFileMissing, add_cache_dir_argument,
    add_data_dir_argument, cache_dir, data_dir, verified_path,
)
from experiments.datasets.polyphonic import (
    CORPORA, PianoRolls, PolyphonicDataset, load_jsb_pickle, load_polyphonic, pad_rolls,
)
from experiments.datasets.shapes import (
    Shapes, ShapesDataset, ShapesSettings, generate_shapes, load_shapes, soft_masks,
)
from experiments.datasets.texture_mnist import (
    TextureMNIST, TextureMNISTDataset, TextureMNISTSettings, generate_texture_mnist, hard_groups,
    load_texture_mnist, texture_bank, texture_frequencies,
)

__all__ = [
    "BRODATZ_IDS", "CACHE_ENV", "CORPORA", "DATA_ENV",
    "BrodatzMNIST", "BrodatzMNISTDataset", "BrodatzMNISTSettings", "CacheCorrupt",
    "DataFileCorrupt", "DataFileMissing", "MnistDataset", "MnistSplit", "MovingMNIST",
    "MovingMNISTDataset", "MovingMNISTSettings", "OccludedMovingMNIST", "OccludedMovingMNISTDataset",
    "OccludedMovingMNISTSettings", "PianoRolls", "PolyphonicDataset", "Shapes", "ShapesDataset",
    "ShapesSettings", "TextureMNIST", "TextureMNISTDataset", "TextureMNISTSettings",
    "add_cache_dir_argument", "add_data_dir_argument", "bar_mask", "cache_dir", "cache_path", "data_dir",
    "generate_brodatz_mnist", "generate_moving_mnist", "generate_occluded_moving_mnist",
    "generate_shapes", "generate_texture_mnist", "hard_groups", "load_brodatz", "load_brodatz_mnist",
    "load_brodatz_stack", "load_jsb_pickle", "load_mnist", "load_moving_mnist",
    "load_occluded_moving_mnist", "load_or_generate", "load_polyphonic", "load_shapes",
    "load_texture_mnist", "mnist_split", "pad_rolls", "render_clean", "soft_masks", "texture_bank",
    "texture_frequencies", "verified_path",
]
