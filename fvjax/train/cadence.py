"""When to run the in-training recovery checks: on a fixed grid of iterations, skipping grid points
whenever the checks would take more than a set share of the training time.

The grid (``training.eval_every``, default 10 points per epoch) keeps ``metrics_during.csv`` rows on
the same iterations in every run; the budget (``training.eval_budget``, default 0.1) decides which
grid points are used. A check's cost is predicted from the previous one, so the first grid point is
always checked (its cost is unknown until then).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class EvalCadence:
    """Mutable bookkeeping of the check schedule for one ``fit`` call (not part of any result)."""

    every: int                  # grid spacing in iterations
    budget: float               # allowed check time / training time; >= 1 checks every grid point
    started: float = 0.0        # wall clock at the start of this fit call
    check_s: float = 0.0        # seconds spent in checks so far (this call)
    last_s: float | None = None  # duration of the latest check
    done: int = 0
    skipped: int = 0

    def __post_init__(self):
        self.started = self.started or time.time()

    def train_s(self, now: float | None = None) -> float:
        """Seconds spent outside the checks since this fit call started."""
        return (now or time.time()) - self.started - self.check_s

    def due(self, iteration: int, now: float | None = None) -> bool:
        """True if ``iteration`` is a grid point and checking it keeps within the budget."""
        if self.budget <= 0 or iteration % self.every:
            return False
        if self.budget >= 1 or self.last_s is None:
            return True
        if self.check_s + self.last_s <= self.budget * self.train_s(now):
            return True
        self.skipped += 1
        return False

    def record(self, seconds: float) -> None:
        self.check_s += seconds
        self.last_s = seconds
        self.done += 1

    def share(self, now: float | None = None) -> float:
        """Check time as a fraction of training time so far (what the progress bar shows)."""
        return self.check_s / max(self.train_s(now), 1e-9)
