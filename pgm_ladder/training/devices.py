"""``--device auto|cpu|cuda|cuda:N|mps`` and the options a device must support
(``--amp bf16``: CUDA with bfloat16 support; ``--compile``: CUDA only)."""
from __future__ import annotations

import contextlib
import os

import torch

from pgm_ladder.training.config import TrainConfig
from pgm_ladder.training.errors import ConfigError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def resolve_device(name: str, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """The ``torch.device`` for ``--device name``; under torchrun CUDA means cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else ("mps" if _mps_available() else "cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError("--device mps: MPS is not available on this machine")
        if world_size > 1:
            raise ConfigError("--device mps cannot be used under torchrun (use cpu or cuda)")
        return torch.device("mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine")
        if name == "cuda":
            return torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        if world_size > 1:
            raise ConfigError(f"--device {name}: under torchrun use --device cuda "
                              "(process LOCAL_RANK takes cuda:LOCAL_RANK)")
        index = int(name.split(":", 1)[1])
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                              "CUDA device(s)")
        return torch.device("cuda", index)
    if name != "cpu":
        raise ConfigError(f"--device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    return torch.device("cpu")


def check_device_options(cfg: TrainConfig, device: torch.device) -> None:
    """Refuse ``--amp bf16`` / ``--compile`` on a device that cannot use them."""
    if cfg.amp == "bf16" and not (device.type == "cuda" and torch.cuda.is_bf16_supported()):
        raise ConfigError(f"--amp bf16 (train.amp) needs a CUDA device with bfloat16 support; "
                          f"device {device} cannot use it (use --amp off)")
    if cfg.compile and device.type != "cuda":
        raise ConfigError(f"--compile (train.compile) is supported on CUDA devices only; "
                          f"device {device} cannot use it (drop --compile)")


def autocast(cfg: TrainConfig, device: torch.device):
    """The forward-pass context: bf16 autocast when ``train.amp == "bf16"``."""
    if cfg.amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_determinism(enabled: bool, device: torch.device) -> None:
    """Deterministic kernels (warning where an op has none); cuDNN autotuning off."""
    if enabled and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled
