"""Small helpers shared by the generators: shape checks, array bundles, seeded streams, datasets.

Generated sets (SPEC §5) are deterministic from ``(seed, split)``: each split draws from its own
``numpy.random.SeedSequence([seed, split code])``, spawned into independent child streams so
that, e.g., the motion of a sequence does not depend on how many digits were drawn.

Every generated set is served by one :class:`BundleDataset`; what a set's item holds is data,
its class's ``ITEM`` table of :func:`entry` / :func:`int_entry` readers.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np
import torch
from torch.utils.data import Dataset

SPLIT_CODES: Dict[str, int] = {"train": 0, "valid": 1, "test": 2, "train_full": 3}

B = TypeVar("B", bound="ArrayBundle")


def check_shape(name: str, array: np.ndarray, expected: Sequence[int], layout: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``array.shape == expected`` (``layout`` names the axes)."""
    if tuple(array.shape) != tuple(int(d) for d in expected):
        raise ValueError(
            f"{name} must have shape {layout} = {tuple(int(d) for d in expected)}, got {tuple(array.shape)}"
        )


def check_dtype(name: str, array: np.ndarray, dtype) -> None:
    if array.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must have dtype {np.dtype(dtype)}, got {array.dtype}")


def check_split(split: str) -> None:
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES)}, got {split!r}")


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def split_streams(seed: int, split: str, n_streams: int) -> Tuple[np.random.Generator, ...]:
    """``n_streams`` independent generators for ``(seed, split)``."""
    check_split(split)
    root = np.random.SeedSequence([check_seed(seed), SPLIT_CODES[split]])
    return tuple(np.random.default_rng(s) for s in root.spawn(n_streams))


def permuted_indices(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """The first ``n`` entries of back-to-back random permutations of ``range(size)``.

    Every item is used once per pass (as the Tagger generators use permutations of MNIST);
    the first ``min(n, size)`` entries do not depend on ``n`` (prefix-stable).
    """
    passes = max(1, -(-n // size))
    return np.concatenate([rng.permutation(size) for _ in range(passes)])[:n]


def check_count(n, default: int) -> int:
    """``n`` (``None`` -> ``default``) as a positive int."""
    n = default if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    return int(n)


@dataclasses.dataclass(frozen=True)
class ArrayBundle:
    """A frozen dataclass of numpy arrays sharing a leading sample axis; subclasses check shapes."""

    def to_arrays(self) -> Dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def names(cls) -> List[str]:
        """The array names, in field order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_arrays(cls: Type[B], arrays: Dict[str, np.ndarray]) -> B:
        names = cls.names()
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"{cls.__name__} arrays lack {missing}")
        return cls(**{n: np.asarray(arrays[n]) for n in names})

    def subset(self: B, index) -> B:
        """The same bundle restricted to samples ``index`` (a slice or integer array)."""
        return type(self)(**{k: v[index] for k, v in self.to_arrays().items()})

    def __len__(self) -> int:
        first = dataclasses.fields(self)[0].name
        return int(getattr(self, first).shape[0])


def settings_dict(settings) -> dict:
    """A JSON-ready dict of a settings dataclass (tuples become lists)."""
    return json_ready(dataclasses.asdict(settings))


def json_ready(value):
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


Reader = Callable[[Any, int], torch.Tensor]  # (dataset, index) -> one entry of an item
Source = Union[str, Callable[[Any, int], np.ndarray]]  # an array name, or (bundle, index) -> array


def entry(source: Source, dtype=None, scale: Optional[float] = None, channel: Optional[int] = None) -> Reader:
    """Reader of sample ``i`` of ``source`` (``bundle.<source>[i]``, or ``source(bundle, i)``) as a
    fresh tensor: cast to ``dtype`` (else copied), divided by ``scale``, a length-1 axis inserted
    at ``channel``."""
    get = (lambda data, i: getattr(data, source)[i]) if isinstance(source, str) else source

    def read(dataset, i: int) -> torch.Tensor:
        x = get(dataset.data, i)
        x = x.astype(dtype) if dtype is not None else x.copy()
        tensor = torch.from_numpy(x / scale if scale is not None else x)
        return tensor if channel is None else tensor.unsqueeze(channel)

    return read


def int_entry(name: str) -> Reader:
    """Reader of ``bundle.<name>[i]`` as an int64 scalar tensor."""
    return lambda dataset, i: torch.tensor(int(getattr(dataset.data, name)[i]), dtype=torch.int64)


class BundleDataset(Dataset):
    """Map-style dataset over an :class:`ArrayBundle` ``data``: item ``i`` is the dict
    ``{key: read(self, i)}`` over the subclass's ``ITEM`` table."""

    ITEM: ClassVar[Mapping[str, Reader]] = {}

    def __init__(self, data: ArrayBundle) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        return {key: read(self, i) for key, read in self.ITEM.items()}
