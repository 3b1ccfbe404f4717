"""Progress lines a person can follow in a job's log: step/total, the latest values, elapsed time and ETA.

Training a network or registering a few hundred pairs takes minutes to hours on a cluster node; the only
window into such a job is its log file (the workflow scripts send the ``logging`` module there). ``Progress``
writes one line when a step is due: the first step (so a stuck job shows early), every ``every`` steps,
whenever ``seconds`` have passed since the last line, and the last step. Example line::

    train voxelmorph on brain_mr: step 50/200 (25%) loss=0.4123 | elapsed 12.0 s, ETA 36.0 s

The ETA assumes the remaining steps take as long as the mean step so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def format_seconds(seconds: float) -> str:
    """``12.0 s``, ``3 min 05 s`` or ``2 h 07 min``: short enough for a log line, exact enough for an ETA."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Counts the steps of a long loop and logs a line when one is due (see the module docstring).

    Args:
        total: number of steps the loop will take.
        what: what the loop does, the start of every line (``"train voxelmorph on brain_mr"``).
        every: log every this many steps (0: only by time, first and last).
        seconds: log when this much time has passed since the last line (0: never by time).
        logger: where lines go (default: this module's logger, which propagates to the job's log file).
        clock: monotonic seconds; replaceable so tests need not sleep.
    """

    def __init__(self, total: int, *, what: str, every: int = 0, seconds: float = 30.0,
                 logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if total < 0:
            raise ValueError(f"Progress(): total must be >= 0, got {total}")
        if every < 0 or seconds < 0:
            raise ValueError(f"Progress(): every and seconds must be >= 0, got {every} and {seconds}")
        self.total, self.what, self.every, self.seconds = total, what, every, seconds
        self.logger = log if logger is None else logger
        self._clock = clock
        self._start = self._last_line = clock()
        self.done = 0

    def step(self, note: str = "", *, level: int = logging.INFO, **values: float) -> None:
        """Count one step; log ``note`` and ``values`` (``loss=0.41``) if a line is due."""
        self.done += 1
        now = self._clock()
        due = (self.done in (1, self.total) or (self.every and self.done % self.every == 0)
               or (self.seconds and now - self._last_line >= self.seconds))
        if due:
            self._last_line = now
            self.logger.log(level, self.line(now - self._start, note, values))

    def line(self, elapsed: float, note: str = "", values: dict[str, float] | None = None) -> str:
        """The log line after ``self.done`` steps and ``elapsed`` seconds."""
        parts = [f"{self.what}: step {self.done}/{self.total} ({100 * self.done / self.total:.0f}%)"]
        if note:
            parts.append(note)
        parts += [f"{key}={value:.4g}" for key, value in (values or {}).items()]
        remaining = elapsed / self.done * (self.total - self.done)
        return " ".join(parts) + f" | elapsed {format_seconds(elapsed)}, ETA {format_seconds(remaining)}"
