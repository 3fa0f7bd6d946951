"""``--tensorboard``: the metrics log also written as TensorBoard event files in
``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR/tensorboard``), through
``torch.utils.tensorboard``; needs the ``tensorboard`` package (``pip install tensorboard``,
part of the ``test`` and ``tensorboard`` extras)."""
from __future__ import annotations

from pathlib import Path

from pgm_ladder.training.errors import ConfigError

#: the keys of a metrics record that are not metrics
NOT_SCALARS = ("step", "epoch")


def require_tensorboard() -> None:
    """Raise :class:`ConfigError` (before anything is written) if ``--tensorboard`` cannot work."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard "
                          "(or pip install -e '.[tensorboard]')") from None


class EventLog:
    """Every scalar of a metrics record as a TensorBoard scalar at the record's step."""

    def __init__(self, directory: Path):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(directory))

    def write(self, record: dict) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, (int, float)):
                self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
