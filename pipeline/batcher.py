"""Dynamic batching and the admission rules of the worker, as pure logic (no sockets, no clocks).

A batch leaves when it holds ``max_batch`` frames or its oldest frame has waited ``max_wait``;
the queue is bounded (``max_queue``): past it the oldest frames are turned away as ``overload``.
A frame already older than the deadline when its batch would start is ``late``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Pending(Generic[T]):
    item: T
    t_acq_ns: int
    t_recv_ns: int


@dataclass
class DynamicBatcher(Generic[T]):
    max_batch: int
    max_wait_ns: int
    max_queue: int
    queue: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_queue < self.max_batch:
            raise ValueError(f"need 1 <= max_batch ({self.max_batch}) <= max_queue ({self.max_queue})")

    def add(self, item: T, t_acq_ns: int, now_ns: int) -> list[T]:
        """Queue a frame; returns the frames pushed out as ``overload`` (oldest first) to keep the bound."""
        self.queue.append(Pending(item, t_acq_ns, now_ns))
        evicted = []
        while len(self.queue) > self.max_queue:
            evicted.append(self.queue.popleft().item)
        return evicted

    def __len__(self) -> int:
        return len(self.queue)

    def wait_ns(self, now_ns: int) -> int | None:
        """How long the loop may wait for more frames before a batch is due (None: queue empty)."""
        if not self.queue:
            return None
        if len(self.queue) >= self.max_batch:
            return 0
        return max(0, self.queue[0].t_recv_ns + self.max_wait_ns - now_ns)

    def take(self, now_ns: int, deadline_ns: int | None = None, force: bool = False) -> tuple[list[T], list[T]]:
        """(batch, late) when a batch is due (or ``force``), else ([], []).

        Late frames (older than ``deadline_ns`` since acquisition) are taken out first and do not count
        towards the batch: they are judged without inference.
        """
        due = self.wait_ns(now_ns) == 0 or (force and self.queue)
        if not due:
            return [], []
        late, batch = [], []
        while self.queue and len(batch) < self.max_batch:
            p = self.queue.popleft()
            if deadline_ns is not None and now_ns - p.t_acq_ns > deadline_ns:
                late.append(p.item)
            else:
                batch.append(p.item)
        return batch, late
