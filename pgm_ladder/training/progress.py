"""tqdm bars for epochs and steps, showing the current loss; silent when stderr is not a
terminal, with ``--quiet``, and on every process but rank 0."""
from __future__ import annotations

import math
import sys

from tqdm.auto import tqdm


def bars_wanted(quiet: bool, is_main: bool) -> bool:
    return not quiet and is_main and sys.stderr.isatty()


class Progress:
    def __init__(self, total_steps: int, steps_per_epoch: int, start_step: int, enabled: bool):
        self.enabled = enabled
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        if not enabled:
            return
        epochs = math.ceil(total_steps / steps_per_epoch)
        self.epochs = tqdm(total=epochs, initial=start_step // steps_per_epoch, desc="epochs",
                           unit="epoch", position=0, dynamic_ncols=True)
        self.steps = tqdm(total=total_steps, initial=start_step, desc="steps", unit="step",
                          position=1, leave=False, dynamic_ncols=True)

    def update(self, step: int, loss: float) -> None:
        if not self.enabled:
            return
        self.steps.update(1)
        self.steps.set_postfix(loss=f"{loss:.4g}", refresh=False)
        if step % self.steps_per_epoch == 0 or step == self.total_steps:
            self.epochs.update(1)
            self.epochs.set_postfix(loss=f"{loss:.4g}")

    def close(self) -> None:
        if self.enabled:
            self.steps.close()
            self.epochs.close()


def note(text: str, *, quiet: bool, is_main: bool) -> None:
    """A one-line message on stderr (through tqdm, so that bars are not torn)."""
    if not quiet and is_main:
        tqdm.write(text, file=sys.stderr)
