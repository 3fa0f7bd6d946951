"""Progress of a training run: tqdm bars for epochs and steps (showing the current loss) on
a terminal, and off a terminal (a log file, a batch job) one line every
:data:`LINE_EVERY_S` seconds; nothing with ``--quiet`` and on every process but rank 0."""
from __future__ import annotations

import math
import sys
import time
from typing import Callable

from tqdm.auto import tqdm

#: seconds between two progress lines off a terminal
LINE_EVERY_S = 30.0


def bars_wanted(quiet: bool, is_main: bool) -> bool:
    return not quiet and is_main and sys.stderr.isatty()


def lines_wanted(quiet: bool, is_main: bool) -> bool:
    return not quiet and is_main and not sys.stderr.isatty()


class Progress:
    """``bars``: tqdm bars; ``lines``: a line on stderr every ``every_s`` seconds of
    ``clock`` naming ``label``, the step, the loss, the speed and the time left."""

    def __init__(self, total_steps: int, steps_per_epoch: int, start_step: int, enabled: bool,
                 *, lines: bool = False, label: str = "training", every_s: float = LINE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.lines, self.label, self.every_s, self.clock = lines, label, every_s, clock
        self.line_start = self.last_line = clock()
        self.start_step = start_step
        if not enabled:
            return
        epochs = math.ceil(total_steps / steps_per_epoch)
        self.epochs = tqdm(total=epochs, initial=start_step // steps_per_epoch, desc="epochs",
                           unit="epoch", position=0, dynamic_ncols=True)
        self.steps = tqdm(total=total_steps, initial=start_step, desc="steps", unit="step",
                          position=1, leave=False, dynamic_ncols=True)

    def update(self, step: int, loss: float) -> None:
        if self.lines:
            self._line(step, loss)
        if not self.enabled:
            return
        self.steps.update(1)
        self.steps.set_postfix(loss=f"{loss:.4g}", refresh=False)
        if step % self.steps_per_epoch == 0 or step == self.total_steps:
            self.epochs.update(1)
            self.epochs.set_postfix(loss=f"{loss:.4g}")

    def _line(self, step: int, loss: float) -> None:
        now = self.clock()
        if now - self.last_line < self.every_s:
            return
        self.last_line = now
        rate = (step - self.start_step) / max(now - self.line_start, 1e-9)
        left = (self.total_steps - step) / rate if rate > 0 else math.inf
        print(f"{self.label}: step {step}/{self.total_steps} ({100 * step / self.total_steps:.0f} %), "
              f"loss {loss:.4g}, {rate:.3g} steps/s, about {_duration(left)} left",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            self.steps.close()
            self.epochs.close()


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "? s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def note(text: str, *, quiet: bool, is_main: bool) -> None:
    """A one-line message on stderr (through tqdm, so that bars are not torn)."""
    if not quiet and is_main:
        tqdm.write(text, file=sys.stderr)
