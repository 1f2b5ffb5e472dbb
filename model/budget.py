"""How far a training run is through its budget, and the learning rate that follows from it.

Under ``--max-minutes`` a run of the ``cpu`` preset ends after a handful of epochs, long before an epoch-keyed
schedule (cosine over ``train.epochs``, reduce-on-plateau) has lowered the learning rate at all, so the kept
weights were always those of a high, noisy learning rate. ``lr_schedule: budget`` anneals over the budget the
run really has: wall-clock seconds when a time limit is set (less what the validations and calibration after the
loop need), else epochs; whichever ends first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class Budget:
    epochs: int
    steps_per_epoch: int
    max_seconds: float | None = None
    reserve_s: float = 0.0  # seconds kept back for the last validation and the calibration after the loop
    t0: float = field(default_factory=time.monotonic)

    def fraction(self, epoch: int, step: int) -> float:
        """0 at the first step, 1 where the budget ends (epoch and step count from 0)."""
        done = (epoch + step / max(1, self.steps_per_epoch)) / self.epochs
        if self.max_seconds is not None:
            usable = max(1e-9, self.max_seconds - self.reserve_s)
            done = max(done, (time.monotonic() - self.t0) / usable)
        return min(1.0, done)


def cosine_factor(fraction: float, floor: float) -> float:
    """1 at the start, ``floor`` at the end of the budget, a half cosine between."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
