"""Where a result came from: the hardware and the git revision (for results files)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Union

import torch

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def hardware(device: Union[torch.device, str, None] = None) -> dict:
    """Platform, CPU count, Python and torch versions, the device and any CUDA device."""
    device = torch.device(device) if device is not None else None
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": str(device) if device is not None else None,
        "device_name": _device_name(device),
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
    }
    return info


def _device_name(device: Optional[torch.device]) -> Optional[str]:
    if device is None:
        return None
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return platform.processor() or platform.machine()
    return device.type


def _git(args: list[str], cwd: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision(path: Optional[Path] = None) -> dict:
    """``{"git_revision": sha or "unknown", "git_dirty": bool or None}`` of the repository
    holding ``path`` (default: this package)."""
    cwd = Path(path) if path is not None else _PACKAGE_DIR
    sha = _git(["rev-parse", "HEAD"], cwd)
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd) if sha else None
    return {"git_revision": sha or "unknown", "git_dirty": bool(status) if sha else None}


def provenance(device: Union[torch.device, str, None] = None) -> dict:
    """Hardware, git revision and the time and command line, for a results file."""
    return {
        "hardware": hardware(device),
        **git_revision(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
    }
