"""The unit aggregator process (docs/design.md 3.9): follows the verdict stream, writes one decision per unit to
the units stream, each through the write-once claim (a restarted aggregator can never decide a unit twice).

Restart: the next undecided unit is kept in Redis (``<units>:next:<t0>``); a restarted aggregator re-reads the
verdict stream from the time that unit's first station could have been triggered, so nothing it needs is behind
its position, and it decides from there on.
"""

from __future__ import annotations

import logging
import time

import redis

from pipeline.config import LineConfig
from pipeline.line_keys import write_once, write_once_script
from pipeline.units import Timeline, UnitAggregator, UnitDecision

log = logging.getLogger("grdnet.aggregator")


class UnitWriter:
    """Decisions to the units stream, in order, once per unit."""

    def __init__(self, client: redis.Redis, cfg: LineConfig) -> None:
        c = cfg.carousel
        self.client, self.stream, self.maxlen = client, c.stream, cfg.redis.maxlen
        self.ttl, self.t0 = cfg.ledger.claim_ttl_s, c.t0_ns
        self.script = write_once_script(client)
        self.next_key = f"{self.stream}:next:{self.t0}"
        self.refused = 0

    def claim_key(self, unit: int) -> str:
        return f"{self.stream}:claim:{self.t0}:{unit}"

    def resume(self, default: int) -> int:
        got = self.client.get(self.next_key)
        return int(got) if got is not None else default

    def write(self, decisions: list[UnitDecision]) -> None:
        if not decisions:
            return
        pipe = self.client.pipeline(transaction=True)
        for d in decisions:
            fields = {"run": str(self.t0), **d.fields()}
            write_once(pipe, self.script, self.stream, self.claim_key(d.unit), d.reason, fields, self.maxlen, self.ttl)
        pipe.set(self.next_key, decisions[-1].unit + 1)
        written = pipe.execute()
        self.refused += sum(1 for w in written[:-1] if w == 0)


def follow(client: redis.Redis, stream: str, position: str, agg: UnitAggregator, block_ms: int | None) -> str:
    """Feed the frame verdicts after ``position`` to ``agg`` (blocking up to ``block_ms``); the new position."""
    for _, entries in client.xread({stream: position}, count=1000, block=block_ms) or []:
        for entry_id, raw in entries:
            agg.add({k.decode(): v.decode() for k, v in raw.items()})
            position = entry_id.decode()
    return position


def aggregator_main(cfg_json: str, clock=None, ready=None) -> None:
    from pipeline.process_setup import StopFlag, setup_logging, wait_for_tick0
    from pipeline.redis_conn import connect

    cfg = LineConfig.model_validate_json(cfg_json)
    setup_logging("aggregator")
    stop = StopFlag()
    client = connect(cfg.redis)
    cfg = wait_for_tick0(cfg, clock, ready, stop)
    c = cfg.carousel
    timeline = Timeline.of(c, c.t0_ns)
    writer = UnitWriter(client, cfg)
    agg: UnitAggregator | None = None
    position = "$"
    counts = {"pass": 0, "eject": 0, "late": 0}
    while not stop.set:
        try:
            if agg is None:
                first = writer.resume(default=0)
                agg = UnitAggregator(c, timeline, first)
                position = f"{max(0, (c.t0_ns + first * timeline.period_ns) // 1_000_000)}-0"
                log.info("deciding units from %d (run %d), %s stations", first, c.t0_ns, len(agg.stations))
            position = follow(client, cfg.redis.stream, position, agg, block_ms=20)
            decisions = agg.due(time.time_ns())
            writer.write(decisions)
            for d in decisions:
                counts["eject" if d.eject else "pass"] += 1
                counts["late"] += d.t_decision_ns > d.t_deadline_ns
                if d.eject:
                    log.info("unit %d (pocket %d): eject, %s", d.unit, d.pocket, d.reason)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.error("Redis unavailable (%s): units wait; the tracker ejects what is undecided", exc)
            time.sleep(0.5)
    if agg is not None:  # stopped after the workers and the reconciler: what is on the stream is all there is
        try:
            while (after := follow(client, cfg.redis.stream, position, agg, block_ms=None)) != position:
                position = after
            writer.write(agg.drain(time.time_ns()))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.error("stop: Redis unavailable (%s): the last units stay undecided (the tracker ejects them)", exc)
    log.info("stopped: %s, %d second decisions refused", counts, writer.refused)
