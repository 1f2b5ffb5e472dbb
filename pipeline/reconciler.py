"""The reconciler (docs/design.md 3.8): every frame the ledger says was sent ends with exactly one verdict.

It follows the ledger stream; when a sent frame is ``grace_s`` past its deadline it tries to write the frame's
``lost`` reject through the same write-once claim the workers use. A frame that has its verdict already makes
the claim fail and nothing is written; a frame that a dead worker, a killed camera or a full queue took with it
gets its ``lost`` reject, counted and logged. A worker verdict that arrives later finds the claim taken.

Timing: a frame is due at ``max(t_acq + deadline + grace, seen + grace)`` (entries a camera buffered through a
Redis outage get their full grace after they appear), and nothing is claimed until Redis has answered for
``grace_s`` without a break, so the workers' buffered verdicts land first after an outage.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import redis

from pipeline.config import LineConfig
from pipeline.line_keys import LineKeys, queue_verdict, write_once_script
from pipeline.metrics import ReconcilerMetrics
from pipeline.rate_log import RateLimitedLog
from pipeline.verdicts import Verdict, failed

log = logging.getLogger("grdnet.reconciler")


@dataclass
class Sent:
    prev_id: str  # the ledger entry before this one: where to resume when this is the oldest unresolved
    camera: str
    epoch: int
    frame_id: int
    slot: int
    t_acq_ns: int
    due: float  # monotonic seconds
    trigger: int = -1


class Reconciler:
    def __init__(
        self,
        client: redis.Redis,
        cfg: LineConfig,
        model_id: str,
        default_threshold: float,
        metrics: ReconcilerMetrics | None = None,
        clock=time.monotonic,
        wall_ns=time.time_ns,
    ) -> None:
        self.client, self.keys = client, LineKeys(cfg.redis.stream)
        self.script = write_once_script(client)
        self.maxlen, self.ttl = cfg.redis.maxlen, cfg.ledger.claim_ttl_s
        self.deadline_s, self.grace_s = cfg.worker.deadline_ms / 1e3, cfg.ledger.grace_s
        self.model_id, self.default_threshold = model_id, default_threshold
        self.thresholds = {c.name: c.threshold for c in cfg.cameras if c.threshold is not None}
        self.metrics = metrics or ReconcilerMetrics()
        self.clock, self.wall_ns = clock, wall_ns
        self.pending: OrderedDict[str, Sent] = OrderedDict()
        self.position: str | None = None  # last ledger id read; None until the stored mark is loaded
        self.mark: str | None = None  # the last ``reconciled`` mark written
        self.up_since: float | None = None
        self.lost = 0
        self.warn = RateLimitedLog(log)

    def _load_position(self) -> None:
        mark = self.client.get(self.keys.reconciled)
        self.position = mark.decode() if mark else "0-0"
        log.info("following the ledger %s from %s", self.keys.ledger, self.position)

    def read(self, block_ms: int | None = 200) -> int:
        """Take new ledger entries into ``pending``; returns how many."""
        if self.position is None:
            self._load_position()
            self.mark = self.position
        resp = self.client.xread({self.keys.ledger: self.position}, count=1000, block=block_ms)
        n = 0
        now, wall_s = self.clock(), self.wall_ns() / 1e9
        for _, entries in resp or []:
            for entry_id, raw in entries:
                eid = entry_id.decode()
                try:
                    f = {k.decode(): v.decode() for k, v in raw.items()}
                    sent = Sent(
                        self.position,
                        f["camera"],
                        int(f["epoch"]),
                        int(f["frame_id"]),
                        int(f["slot"]),
                        int(f["t_acq_ns"]),
                        0.0,
                        int(f.get("trigger", -1)),
                    )
                except (KeyError, ValueError) as exc:
                    self.warn("bad_entry", f"ledger entry {eid} unreadable ({exc!r}): skipped")
                    self.position = eid
                    continue
                wait = max(self.grace_s, sent.t_acq_ns / 1e9 + self.deadline_s + self.grace_s - wall_s)
                sent.due = now + wait
                self.pending[eid] = sent
                self.position = eid
                self.metrics.seen.labels(sent.camera).inc()
                n += 1
        return n

    def resolve(self, final: bool = False) -> list[Verdict]:
        """Claim every due frame (every pending frame when ``final``) with a ``lost`` reject; returns the ones
        written (frames that had no verdict)."""
        now = self.clock()
        if not final and (self.up_since is None or now - self.up_since < self.grace_s):
            return []
        due = [(eid, s) for eid, s in self.pending.items() if final or s.due <= now]
        due_ids = {eid for eid, _ in due}
        first_left = next((eid for eid in self.pending if eid not in due_ids), None)
        mark = self.pending[first_left].prev_id if first_left else self.position
        if not due and mark == self.mark:
            return []
        pipe = self.client.pipeline(transaction=True)
        t_ns = self.wall_ns()
        verdicts = [
            failed(
                reason="lost",
                camera=s.camera,
                frame_id=s.frame_id,
                slot=s.slot,
                t_acq_ns=s.t_acq_ns,
                now_ns=t_ns,
                threshold=self.thresholds.get(s.camera, self.default_threshold),
                model=self.model_id,
                epoch=s.epoch,
                trigger=s.trigger,
            )
            for _, s in due
        ]
        for v in verdicts:
            queue_verdict(pipe, self.script, self.keys, v, self.maxlen, self.ttl, claimed=True)
        if mark is not None:
            pipe.set(self.keys.reconciled, mark)
        written = pipe.execute()
        self.mark = mark
        out = []
        for (eid, s), v, w in zip(due, verdicts, written, strict=False):
            del self.pending[eid]
            if w == 1:
                out.append(v)
                self.lost += 1
                self.metrics.lost.labels(s.camera).inc()
                self.warn(
                    "lost",
                    f"frame {s.camera}/{s.epoch}/{s.frame_id} (slot {s.slot}) had no verdict "
                    f"{(t_ns - s.t_acq_ns) / 1e9:.1f} s after acquisition: lost reject written "
                    f"({self.lost} so far)",
                )
        return out

    def step(self, block_ms: int = 200) -> list[Verdict]:
        """One round: read the ledger, claim what is due. Redis away: wait, log once, keep what is pending."""
        try:
            self.read(block_ms)
            if self.up_since is None:
                self.up_since = self.clock()
                log.info("Redis reachable: claiming due frames after %.1f s of grace", self.grace_s)
            lost = self.resolve()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self.up_since is not None or self.position is None:
                log.error("Redis unavailable (%s): lost frames are claimed once it is back", exc)
            self.up_since = None
            self.metrics.redis_up.set(0)
            time.sleep(0.5)
            return []
        self.metrics.redis_up.set(1)
        self.metrics.pending.set(len(self.pending))
        oldest = next(iter(self.pending.values()), None)
        self.metrics.lag.set((self.wall_ns() - oldest.t_acq_ns) / 1e9 if oldest else 0.0)
        return lost

    def final_sweep(self, timeout_s: float = 10.0) -> list[Verdict]:
        """At a stop, after the workers drained: every frame still pending has no verdict coming."""
        end = time.monotonic() + timeout_s
        while True:
            try:
                while self.read(block_ms=None):
                    pass
                return self.resolve(final=True)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() > end:
                    log.error("stop: %d sent frames unreconciled, Redis away (%s)", len(self.pending), exc)
                    return []
                time.sleep(0.5)


def reconciler_main(cfg_json: str) -> None:
    """Process entry: follow the ledger until SIGTERM, then sweep (the supervisor stops it after the workers)."""
    from model.checkpoint import read_meta
    from pipeline.process_setup import StopFlag, setup_logging, start_metrics
    from pipeline.redis_conn import connect

    cfg = LineConfig.model_validate_json(cfg_json)
    setup_logging("reconciler")
    stop = StopFlag()
    metrics = ReconcilerMetrics()
    start_metrics(cfg, metrics.registry, cfg.metrics.reconciler_port, 0)
    meta = read_meta(Path(cfg.worker.checkpoint))
    rec = Reconciler(connect(cfg.redis), cfg, meta.id, meta.threshold, metrics)
    while not stop.set:
        rec.step()
    rec.final_sweep()
    log.info("stopped: %d lost frames written", rec.lost)
