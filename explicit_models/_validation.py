"""Parameter and input validation shared by the explicit models (SPEC §2).

Every failure is a ``ValueError`` whose message starts with the parameter's name, e.g.
``stds[1] must be positive and finite`` or
``weights[0] has shape (3, 5) but levels 0 and 1 have widths 3 and 4``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(int(d)) for d in t.shape) + (",)" if t.dim() == 1 else ")")


def as_tensor(value, name: str, dtype: torch.dtype, device=None) -> torch.Tensor:
    """Convert a tensor / array / list / number to a real tensor of ``dtype``.

    Non-tensors go through NumPy at full precision (``torch.as_tensor`` of a Python list
    would round through float32 first)."""
    if value is None:
        raise ValueError(f"{name} is required")
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"{name} must be real-valued, got dtype {value.dtype}")
        return value.to(dtype=dtype, device=device)
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists, ...
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be real-valued numbers, got dtype {arr.dtype}")
    return torch.as_tensor(arr.astype(np.float64), device=device).to(dtype=dtype)


def check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_ndim(t: torch.Tensor, ndim: int, name: str, layout: str) -> None:
    if t.dim() != ndim:
        raise ValueError(f"{name} must have shape {layout}, got {_shape(t)}")


def check_positive(t: torch.Tensor, name: str) -> None:
    if not bool((torch.isfinite(t) & (t > 0)).all()):
        raise ValueError(f"{name} must be positive and finite")


def check_width(t: torch.Tensor, width: int, name: str, what: str) -> None:
    if t.shape[-1] != width:
        raise ValueError(f"{name} has shape {_shape(t)} but {what} has width {width}")


def check_probs(t: torch.Tensor, name: str, atol: float = 1e-6) -> None:
    check_finite(t, name)
    if not bool((t > 0).all()):
        raise ValueError(f"{name} must be positive (every class needs prior mass)")
    total = float(t.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (within {atol:g}), sums to {total:.10g}")


def check_x_noisy(x, width: int, dtype: torch.dtype, device=None, name: str = "x_noisy") -> torch.Tensor:
    """Return ``x`` as a ``(batch, width)`` tensor of ``dtype`` (keeping autograd history)."""
    if isinstance(x, torch.Tensor):
        t = x.to(dtype=dtype, device=device)
    else:
        t = as_tensor(x, name, dtype, device)
    if t.dim() != 2 or t.shape[1] != width:
        raise ValueError(f"{name}: expected shape (batch, {width}), got {_shape(t)}")
    if bool(torch.isnan(t).any()) or bool(torch.isinf(t).any()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def check_scalar(value, name: str, dtype: torch.dtype, device=None) -> torch.Tensor:
    t = as_tensor(value, name, dtype, device)
    if t.numel() != 1:
        raise ValueError(f"{name} must be a scalar, got shape {_shape(t)}")
    t = t.reshape(())
    check_positive(t, name)
    return t


def optional_tensor(value, name: str, dtype, device) -> Optional[torch.Tensor]:
    return None if value is None else as_tensor(value, name, dtype, device)
