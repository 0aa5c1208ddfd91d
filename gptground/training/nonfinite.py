"""When ``trainer.nan_policy=skip`` gives up: limits on skipped non-finite batches.

Skipping a batch whose loss or gradients are NaN/inf keeps a run alive through a rare bad
batch; a run that skips most of its batches is not training, and must stop rather than
exit 0 with a model. Two limits, both on the numbers of all ranks together (each rank
feeds the same sequence of decisions, so all ranks stop at the same step):

- ``trainer.nan_skip_max_consecutive``: this many non-finite batches in a row is allowed;
  one more stops the run (weights or optimizer state gone bad skip every batch after).
- ``trainer.nan_skip_max_fraction`` of the last ``trainer.nan_skip_window`` batches: more
  non-finite batches than that within the window stops the run (intermittent divergence).
  The window is counted in full from the first batch: ``fraction * window`` is a number of
  batches, so one NaN in the first step does not read as 100 %.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass


class NonFiniteLimitError(FloatingPointError):
    """Too many non-finite batches were skipped; names the steps and their samples."""


@dataclass(frozen=True)
class SkipLimits:
    max_consecutive: int  # non-finite batches allowed in a row
    max_fraction: float  # share of ``window`` allowed to be non-finite
    window: int  # batches the fraction is counted over

    @property
    def max_in_window(self) -> int:
        """Non-finite batches allowed within one window (floor of fraction x window)."""
        return math.floor(self.max_fraction * self.window + 1e-9)


class NonFiniteGuard:
    """Records each training batch (non-finite or not) and stops the run past a limit.

    Its state (the window, the run of consecutive skips, the skipped steps and samples
    still in the window) is saved in checkpoints, so a resumed run counts on from where
    the interrupted one was.
    """

    def __init__(self, limits: SkipLimits):
        self.limits = limits
        self._window: collections.deque[bool] = collections.deque(maxlen=limits.window)
        self._consecutive = 0
        # (batch index in the run, global step, sample ids) of the non-finite batches in the window
        self._skipped: collections.deque[tuple[int, int, list[str]]] = collections.deque()
        self._batches = 0  # batches recorded, over the whole run (resumes included)

    def record(self, nonfinite: bool, step: int, sample_ids: list[str]) -> None:
        """Add one batch; raises when the limits are passed.

        Raises:
            NonFiniteLimitError: more than ``max_consecutive`` non-finite batches in a row, or
                more than ``max_fraction`` of the last ``window`` batches non-finite.
        """
        self._window.append(nonfinite)
        self._batches += 1
        while self._skipped and self._skipped[0][0] <= self._batches - self.limits.window:
            self._skipped.popleft()  # fell out of the window
        if not nonfinite:
            self._consecutive = 0
            return
        self._consecutive += 1
        self._skipped.append((self._batches, step, list(sample_ids)))
        in_window = sum(self._window)
        if self._consecutive > self.limits.max_consecutive:
            self._stop(
                f"{self._consecutive} non-finite batches in a row "
                f"(`trainer.nan_skip_max_consecutive={self.limits.max_consecutive}`)",
                self._consecutive,
            )
        if in_window > self.limits.max_in_window:
            self._stop(
                f"{in_window} of the last {self.limits.window} batches non-finite "
                f"(`trainer.nan_skip_max_fraction={self.limits.max_fraction}` of "
                f"`trainer.nan_skip_window={self.limits.window}` allows {self.limits.max_in_window})",
                in_window,
            )

    def _stop(self, why: str, last: int) -> None:
        shown = list(self._skipped)[-last:][-10:]  # the skips that count, at most 10 named
        steps = "; ".join(f"step {step}: {ids}" for _, step, ids in shown)
        raise NonFiniteLimitError(
            f"`trainer.nan_policy=skip` gave up: {why}. Skipped global steps and this rank's "
            f"samples: {steps}. Lower `optim.lr`, check these samples, or raise the limits."
        )

    def state_dict(self) -> dict:
        """Plain lists and ints only: checkpoints are loaded with ``weights_only``."""
        return {
            "window": [bool(x) for x in self._window],
            "consecutive": self._consecutive,
            "skipped": [[i, s, list(ids)] for i, s, ids in self._skipped],
            "batches": self._batches,
        }

    def load_state_dict(self, state: dict) -> None:
        self._window.clear()
        self._window.extend(state["window"])
        self._consecutive = int(state["consecutive"])
        self._skipped = collections.deque((int(i), int(s), list(ids)) for i, s, ids in state["skipped"])
        self._batches = int(state["batches"])
