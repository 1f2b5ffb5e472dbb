"""Verdicts to the Redis stream: one pipelined round trip per batch; while Redis is away, verdicts wait
in a bounded in-order buffer and are written first when it returns (docs/design.md section 4, rule 4).

Each flush is a MULTI/EXEC transaction, so a flush lands whole or not at all. Each verdict of a ledgered frame
is written once (``line_keys.WRITE_ONCE``): a batch retried after a reply lost past EXEC, or a verdict that comes
after the reconciler wrote the frame ``lost``, writes nothing and is counted (``grdnet_verdicts_suppressed``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import redis

from pipeline.line_keys import LineKeys, queue_verdict, write_once_script
from pipeline.metrics import WorkerMetrics
from pipeline.rate_log import RateLimitedLog
from pipeline.redis_conn import keep_trying, mask_url
from pipeline.verdicts import Verdict

log = logging.getLogger("grdnet.publisher")
CHUNK = 1000


class VerdictPublisher:
    def __init__(
        self,
        url: str,
        stream: str,
        maxlen: int,
        buffer_max: int,
        metrics: WorkerMetrics | None = None,
        retry_s: float = 0.5,
        claim_ttl_s: int = 3600,
        client: redis.Redis | None = None,
    ) -> None:
        self.client = client or redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=0.5)
        self.url, self.stream, self.maxlen = mask_url(url), stream, maxlen
        self.keys, self.claim_ttl_s = LineKeys(stream), claim_ttl_s
        self.script = write_once_script(self.client)
        self.suppressed = 0
        self.warn = RateLimitedLog(log)
        self.buffer: deque[Verdict] = deque()
        self.buffer_max = buffer_max
        self.metrics = metrics or WorkerMetrics()
        self.retry_s = retry_s
        self.next_try = 0.0
        self.up = True
        self.dropped = 0
        self.on_written: deque[Callable[[int], None]] = deque()

    def publish(self, verdicts: list[Verdict], on_written: Callable[[int], None] | None = None) -> bool:
        """Queue then write; True when everything queued so far reached Redis. ``on_written(t_ns)`` is called
        once these verdicts (and all before them) are in Redis."""
        if on_written is not None:
            self.on_written.append(on_written)
        for v in verdicts:
            if len(self.buffer) >= self.buffer_max:
                self.buffer.popleft()
                self.dropped += 1
                self.metrics.redis_dropped.inc()
                self.warn(
                    "full", f"verdict buffer full ({self.buffer_max}): oldest verdict lost ({self.dropped} so far)"
                )
            self.buffer.append(v)
        return self.flush()

    def flush(self, force: bool = False) -> bool:
        if not self.buffer:
            return True
        if not force and time.monotonic() < self.next_try:
            self._gauge()
            return False
        try:
            while self.buffer:
                chunk = [self.buffer[i] for i in range(min(CHUNK, len(self.buffer)))]
                pipe = self.client.pipeline(transaction=True)
                for v in chunk:
                    queue_verdict(pipe, self.script, self.keys, v, self.maxlen, self.claim_ttl_s, v.claim)
                written = pipe.execute()
                for v, w in zip(chunk, written, strict=True):
                    self.buffer.popleft()
                    if v.claim and w == 0:
                        self._suppressed(v)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self.up:
                why = "refused our credentials" if isinstance(exc, redis.AuthenticationError) else "unavailable"
                log.error("Redis at %s %s (%s): buffering verdicts", self.url, why, exc)
            self.up = False
            self.next_try = time.monotonic() + self.retry_s
            self._gauge()
            return False
        if not self.up:
            log.warning("Redis at %s back: buffered verdicts written", self.url)
        self.up = True
        self._gauge()
        t_written = time.time_ns()
        while self.on_written:
            self.on_written.popleft()(t_written)
        return True

    def write_status(self, key: str, fields: dict[str, str], ttl_s: int) -> None:
        """Best effort: a status the line page reads; while Redis is away it is skipped (flush logs the outage)."""
        try:
            self.client.pipeline(transaction=True).hset(key, mapping=fields).expire(key, ttl_s).execute()
        except (redis.ConnectionError, redis.TimeoutError):
            pass

    def _suppressed(self, v: Verdict) -> None:
        """The frame already had a verdict (the reconciler's ``lost``, or this same batch before a lost reply)."""
        self.suppressed += 1
        self.metrics.verdicts_suppressed.inc()
        if self.suppressed <= 10 or self.suppressed % 1000 == 0:
            log.warning(
                "verdict %s for %s/%d/%d not written: the frame already has one (%d so far)",
                v.reason,
                v.camera,
                v.epoch,
                v.frame_id,
                self.suppressed,
            )

    def drain(self, timeout_s: float) -> bool:
        """At shutdown: keep trying until the buffer is written or ``timeout_s`` passes."""
        if keep_trying(lambda: self.flush(force=True), timeout_s, self.retry_s):
            return True
        log.error("shutdown: %d verdicts could not be written to Redis", len(self.buffer))
        return False

    def _gauge(self) -> None:
        self.metrics.redis_buffer.set(len(self.buffer))
        self.metrics.redis_up.set(1 if self.up else 0)


class ThreadedPublisher:
    """The same publisher on a thread of its own, so the Redis round trip (~1-2 ms per batch on a loaded
    2-core machine) overlaps the next inference instead of adding to it. Order is kept: one thread, FIFO.
    With ``status`` (key, a function returning the fields), the thread also refreshes that hash every
    ``status_s`` for the line page; it expires ``3 x status_s`` after the worker stops refreshing it."""

    def __init__(
        self,
        inner: VerdictPublisher,
        status: tuple[str, Callable[[], dict[str, str]]] | None = None,
        status_s: float = 1.0,
    ) -> None:
        self.inner = inner
        self.metrics = inner.metrics
        self.status, self.status_s, self.next_status = status, status_s, 0.0
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="verdict-publisher", daemon=True)
        self.thread.start()

    def publish(self, verdicts: list[Verdict], on_written: Callable[[int], None] | None = None) -> bool:
        self.jobs.put((verdicts, on_written))
        return True

    def flush(self, force: bool = False) -> bool:
        return True  # the thread flushes

    def _refresh_status(self) -> None:
        if self.status is None or time.monotonic() < self.next_status:
            return
        self.next_status = time.monotonic() + self.status_s
        key, fields = self.status
        self.inner.write_status(key, fields(), max(1, round(3 * self.status_s)))

    def _loop(self) -> None:
        while True:
            self._refresh_status()
            try:
                job = self.jobs.get(timeout=min(self.inner.retry_s, self.status_s))
            except queue.Empty:
                self.inner.flush()  # retry a buffered backlog while Redis is away
                continue
            if job is None:
                return
            batch, callbacks = list(job[0]), [job[1]]
            while True:  # take whatever else is waiting: one round trip for all of it
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.jobs.put(None)
                    break
                batch += more[0]
                callbacks.append(more[1])
            cbs = [c for c in callbacks if c is not None]

            def done(t_ns: int, cbs=cbs) -> None:
                for c in cbs:
                    c(t_ns)

            self.inner.publish(batch, done if cbs else None)

    def drain(self, timeout_s: float) -> bool:
        """Write everything handed over so far (waiting for Redis up to ``timeout_s``), then stop the thread."""
        self.jobs.put(None)
        self.thread.join(timeout=timeout_s)
        return self.inner.drain(timeout_s)
