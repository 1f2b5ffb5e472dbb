"""How far a training run is through its budget, and the learning rate that follows from it.

Under ``--max-minutes`` a run of the ``cpu`` preset ends after a few dozen epochs, long before an epoch-keyed
schedule over ``train.epochs`` has lowered the learning rate, so ``lr_schedule: budget`` anneals over the epochs
the run really has. With a time limit that count is planned after the first epochs were timed: the epochs, their
validations and the work after the loop that fit in the limit, with 5 % to spare. Keyed to the wall clock
instead, every step's learning rate depended on how busy the machine was, and the same seed on the same data
gave another model each run (ampoule, dev render: 0.864 and 0.919). With a plan, runs that plan the same count
train the same weights; the plan is lowered only when the machine slows past the spare time.

The plan is made on the median of epochs 2-4 and revised once, up or down, when the first validation has been
timed. Until 2026-12-06 it was made on epoch 2 alone, with a validation assumed to cost an epoch, and never
raised: 7 of 9 benchmark runs ended 90-200 s before their 600 (a slow epoch 2 set vials seed 4's plan to 28
epochs where ~33 fit; validations took ~10 s where an epoch took 12-15).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

PLAN_AFTER_EPOCHS = 4  # the first epoch pays one-off start-up costs; the median of the next three is the plan's
PLAN_SPARE = 1.05  # the planned epochs fit even if every further epoch is 5 % slower than a typical one so far


@dataclass
class Budget:
    epochs: int  # the cap (train.epochs), and the count annealed over when no time limit is set
    steps_per_epoch: int
    max_seconds: float | None = None
    planned: int | None = None  # epochs the time limit fits, once planned
    lowered: int = 0  # times the plan was lowered because the machine slowed
    revised: int | None = None  # the plan before the first timed validation revised it (None: not changed)
    timed_plan: bool = False  # a plan was made on a timed validation: nothing is left to revise

    def total(self) -> int:
        return self.planned if self.planned is not None else self.epochs

    def fraction(self, epoch: int, step: int) -> float:
        """0 at the first step, 1 where the planned epochs end (epoch and step count from 0)."""
        return min(1.0, (epoch + step / max(1, self.steps_per_epoch)) / self.total())

    def fits(
        self, n: int, done: int, elapsed_s: float, epoch_s: float, val_s: float, final_s: float, validations: Callable
    ) -> bool:
        """Would ``n`` epochs in all end in time: ``done`` run after ``elapsed_s``, each further one taking
        ``epoch_s`` and ``validations(done, n)`` validations ``val_s`` each, then ``final_s`` after the loop."""
        assert self.max_seconds is not None
        left = (n - done) * epoch_s + validations(done, n) * val_s + final_s
        return elapsed_s + left <= self.max_seconds

    def replan(
        self,
        done: int,
        elapsed_s: float,
        epoch_s: float,
        val_s: float,
        final_s: float,
        validations: Callable,
        val_timed: bool = False,
    ) -> None:
        """After epoch ``done``: plan the epoch count (with the spare) the first time, and once more, up or
        down, on the first timed validation (``val_timed``: ``val_s`` was measured, not assumed); else lower it
        when it no longer fits without the spare. Raised only that once: a plan that moves with every epoch is
        the clock again."""
        if self.max_seconds is None or done < PLAN_AFTER_EPOCHS:
            return
        args = (done, elapsed_s, epoch_s, val_s, final_s, validations)
        revise = val_timed and self.planned is not None and not self.timed_plan
        if self.planned is not None and not revise and self.fits(self.planned, *args):
            return
        fresh = self.planned is None or revise
        spare = PLAN_SPARE if fresh else 1.0
        slack = (done, elapsed_s, epoch_s * spare, val_s * spare, final_s, validations)
        top = self.epochs if fresh else self.total()
        n = next((n for n in range(top, done, -1) if self.fits(n, *slack)), done)
        if revise:
            self.revised = self.planned if n != self.planned else None
        else:
            self.lowered += self.planned is not None
        self.planned, self.timed_plan = n, self.timed_plan or val_timed

    def after_epoch(
        self,
        done: int,
        elapsed_s: float,
        epoch_times: list[float],
        val_times: list[float],
        final_validations: float,
        validations: Callable,
    ) -> bool:
        """After epoch ``done`` (``elapsed_s`` into the run): replan on the typical epoch and validation, and
        say whether the hard limit ends the run now. The first epoch's time counts only while it is the one
        measured (it pays start-up costs); the work after the loop costs ``final_validations`` validations. The
        hard limit: the next epoch, its validation and that work must fit even if each is the slowest seen."""
        steady = epoch_times[1:] or epoch_times
        epoch_s = typical_seconds(steady)
        val_s = typical_seconds(val_times) if val_times else epoch_s
        self.replan(done, elapsed_s, epoch_s, val_s, final_validations * val_s, validations, bool(val_times))
        if self.max_seconds is None:
            return False
        worst_val = max(val_times, default=max(steady))
        return elapsed_s + max(steady) + (1 + final_validations) * worst_val > self.max_seconds


def typical_seconds(times: list[float]) -> float:
    """What an epoch (or a validation) costs, for planning: the median of those measured. The slowest one was
    used until 2026-12-06: an epoch slowed by other work then counted for every epoch left, and a vials run with a
    few minutes of other work beside it lowered its plan to 14 epochs and ended at 353 s of its 600. The
    time such an epoch lost is in the elapsed seconds already; a lasting slowdown moves the median."""
    return statistics.median(times)


def cosine_factor(fraction: float, floor: float) -> float:
    """1 at the start, ``floor`` at the end of the budget, a half cosine between."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, fraction))))
