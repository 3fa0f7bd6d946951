#!/usr/bin/env bash
# Set up pgm-ladder on a fresh machine: a virtualenv in .venv with the CPU build of
# PyTorch installed first (so that pip does not fetch a multi-GB CUDA build), then the
# project itself with its test extra. Idempotent: re-running reuses .venv.
# Use PGM_LADDER_VENV to put the environment elsewhere, PGM_LADDER_TORCH to pin another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PGM_LADDER_VENV:-.venv}"
torch_spec="${PGM_LADDER_TORCH:-torch==2.13.0}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$torch_spec"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
echo "pgm-ladder installed in $venv ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
