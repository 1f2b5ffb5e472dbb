"""The camera side of the frame ledger (docs/design.md 3.8): every frame's identity is recorded before the frame
is sent, so a frame that a dying process takes with it is still known, and the reconciler answers it ``lost``.

Write-ahead, one pipelined round trip per frame (~0.3 ms on loopback, against a frame period of 50 ms or more).
While Redis is away the entries wait in a bounded in-order buffer (a counted, logged loss when it overflows) and
are written first when it returns; a camera killed during an outage takes that buffer with it (the one double
fault the ledger cannot cover: the frames it names still get the worker's verdicts, they are only not ledgered).
"""

from __future__ import annotations

import logging
import time
from collections import deque

import redis

from pipeline.line_keys import LineKeys
from pipeline.metrics import CameraMetrics
from pipeline.rate_log import RateLimitedLog
from pipeline.redis_conn import keep_trying
from pipeline.wire import FrameHeader

log = logging.getLogger("grdnet.ledger")
CHUNK = 1000


def ledger_fields(h: FrameHeader) -> dict[str, str]:
    out = {
        "camera": h.camera,
        "epoch": str(h.epoch),
        "frame_id": str(h.frame_id),
        "slot": str(h.slot),
        "t_acq_ns": str(h.t_acq_ns),
    }
    if h.trigger is not None:
        out["trigger"] = str(h.trigger)
    return out


class Ledger:
    def __init__(
        self,
        client: redis.Redis,
        keys: LineKeys,
        camera: str,
        maxlen: int,
        buffer_max: int,
        metrics: CameraMetrics | None = None,
        retry_s: float = 0.5,
    ) -> None:
        self.client, self.keys, self.camera, self.maxlen = client, keys, camera, maxlen
        self.buffer: deque[tuple[int, dict[str, str]]] = deque()
        self.buffer_max, self.retry_s = buffer_max, retry_s
        self.metrics = metrics or CameraMetrics()
        self.up, self.next_try, self.dropped = True, 0.0, 0
        self.warn = RateLimitedLog(log)

    def resume(self, timeout_s: float) -> int:
        """The counter to continue from: one past the last recorded frame_id (0 for a camera the ledger has never
        seen). When Redis does not answer within ``timeout_s``, 0 under the new epoch, logged."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                last = self.client.hget(self.keys.last_sent, self.camera)
                return int(last) + 1 if last is not None else 0
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() >= end:
                    log.error("ledger unreadable (%s): frame ids start at 0 under a new epoch", exc)
                    return 0
                time.sleep(min(self.retry_s, max(0.0, end - time.monotonic())))

    def record(self, header: FrameHeader) -> bool:
        """Record one frame before it is sent; True when it (and everything before it) is in Redis."""
        if len(self.buffer) >= self.buffer_max:
            self.buffer.popleft()
            self.dropped += 1
            self.metrics.ledger_dropped.labels(self.camera).inc()
            self.warn("full", f"ledger buffer full ({self.buffer_max}): oldest entry lost ({self.dropped} so far)")
        self.buffer.append((header.frame_id, ledger_fields(header)))
        return self.flush()

    def flush(self, force: bool = False) -> bool:
        if not self.buffer:
            return True
        if not force and not self.up and time.monotonic() < self.next_try:
            self.metrics.ledger_buffer.labels(self.camera).set(len(self.buffer))
            return False
        try:
            while self.buffer:
                chunk = [self.buffer[i] for i in range(min(CHUNK, len(self.buffer)))]
                pipe = self.client.pipeline(transaction=True)
                for _, fields in chunk:
                    pipe.xadd(self.keys.ledger, fields, maxlen=self.maxlen, approximate=True)
                pipe.hset(self.keys.last_sent, self.camera, str(chunk[-1][0]))
                pipe.execute()
                for _ in chunk:
                    self.buffer.popleft()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self.up:
                log.error("ledger: Redis unavailable (%s): keeping sent frames in order until it returns", exc)
            self.up, self.next_try = False, time.monotonic() + self.retry_s
            self.metrics.ledger_buffer.labels(self.camera).set(len(self.buffer))
            return False
        if not self.up:
            log.warning("ledger: Redis back, buffered entries written")
        self.up = True
        self.metrics.ledger_buffer.labels(self.camera).set(0)
        return True

    def drain(self, timeout_s: float) -> bool:
        """At a clean stop: keep trying until the buffer is written or ``timeout_s`` passes."""
        if keep_trying(lambda: self.flush(force=True), timeout_s, self.retry_s):
            return True
        log.error("stop: %d ledger entries could not be written", len(self.buffer))
        return False
