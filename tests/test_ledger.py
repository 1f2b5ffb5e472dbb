"""The frame ledger and the reconciler against a real redis-server: every sent frame ends with exactly one verdict,
the ``lost`` ones are rejects, a late worker verdict is refused by the claim, and restarts neither repeat frame
ids nor write a frame twice."""

import time

import redis

from pipeline.config import CameraConfig, LedgerConfig, LineConfig, RedisConfig, WorkerConfig
from pipeline.ledger import Ledger
from pipeline.line_keys import LineKeys
from pipeline.publisher import VerdictPublisher
from pipeline.reconciler import Reconciler
from pipeline.wire import FrameHeader
from tests.conftest import make_verdict

EPOCH = 1_700_000_000_000_000_000


def _cfg(url, stream, grace_s=2.0, deadline_ms=500.0):
    return LineConfig(
        cameras=[CameraConfig(name="cam0"), CameraConfig(name="cam1", threshold=0.9)],
        worker=WorkerConfig(deadline_ms=deadline_ms),
        redis=RedisConfig(url=url, stream=stream),
        ledger=LedgerConfig(grace_s=grace_s),
    )


def _header(camera, frame_id, t_acq_ns, epoch=EPOCH):
    return FrameHeader(camera, frame_id, frame_id % 24, t_acq_ns, (8, 8, 3), epoch=epoch)


def _rows(url, stream):
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis.Redis.from_url(url).xrange(stream)]


class Clock:
    """Monotonic and wall time the test moves by hand."""

    def __init__(self) -> None:
        self.t, self.wall = 1000.0, time.time_ns()

    def advance(self, s: float) -> None:
        self.t += s
        self.wall += int(s * 1e9)


def _recorded(url, stream, frames, grace_s=1.0):
    """A line config, a cam0 ledger and a clock, with ``frames`` frames recorded as sent now."""
    cfg = _cfg(url, stream, grace_s=grace_s)
    ledger = Ledger(redis.Redis.from_url(url), LineKeys(stream), "cam0", 10_000, 1000)
    clock = Clock()
    for i in range(frames):
        ledger.record(_header("cam0", i, clock.wall))
    return cfg, ledger, clock


def _reconciler(url, cfg, clock, **client):
    client = redis.Redis.from_url(url, **client)
    return Reconciler(client, cfg, "model-x", 0.5, clock=lambda: clock.t, wall_ns=lambda: clock.wall)


def test_ledger_resumes_after_the_last_recorded_frame_and_keeps_order_through_an_outage(durable_redis):
    fresh_redis = durable_redis
    keys = LineKeys("l:resume")
    client = redis.Redis.from_url(fresh_redis.url, socket_timeout=0.25, socket_connect_timeout=0.25)
    ledger = Ledger(client, keys, "cam0", 10_000, 1000, retry_s=0.05)
    assert ledger.resume(0) == 0, "a camera the ledger has never seen starts at 0"
    for i in range(3):
        assert ledger.record(_header("cam0", i, time.time_ns()))
    fresh_redis.stop()
    for i in range(3, 6):
        assert not ledger.record(_header("cam0", i, time.time_ns())), "buffered while Redis is away"
    fresh_redis.start()
    time.sleep(0.1)
    assert ledger.flush()
    ids = [int(r["frame_id"]) for r in _rows(fresh_redis.url, keys.ledger)]
    assert ids == [0, 1, 2, 3, 4, 5], "nothing lost, in order"
    restarted = Ledger(client, keys, "cam0", 10_000, 1000)
    assert restarted.resume(1.0) == 6, "a restarted camera continues after the last recorded frame id"


def test_frames_without_a_verdict_become_lost_rejects_and_the_rest_stay_untouched(redis_server):
    cfg = _cfg(redis_server.url, "l:lost")
    keys = LineKeys(cfg.redis.stream)
    client = redis.Redis.from_url(redis_server.url)
    ledger = Ledger(client, keys, "cam0", 10_000, 1000)
    clock = Clock()
    for cam in ("cam0", "cam1"):
        for i in range(5):
            ledger.camera = cam
            ledger.record(_header(cam, i, clock.wall))
    pub = VerdictPublisher(redis_server.url, cfg.redis.stream, 10_000, 1000)
    judged = [
        make_verdict(c, i, slot=i % 24, t_acq_ns=clock.wall, t_verdict_ns=clock.wall, epoch=EPOCH)
        for c in ("cam0",)
        for i in range(5)
    ]
    judged += [
        make_verdict("cam1", i, slot=i % 24, t_acq_ns=clock.wall, t_verdict_ns=clock.wall, epoch=EPOCH) for i in (0, 2)
    ]
    assert pub.publish(judged)

    rec = _reconciler(redis_server.url, cfg, clock)
    assert rec.step(block_ms=10) == [] and len(rec.pending) == 10
    clock.advance(2.4)  # deadline 0.5 s + grace 2 s not yet over
    assert rec.step(block_ms=10) == []
    clock.advance(0.2)
    lost = rec.step(block_ms=10)
    assert sorted((v.camera, v.frame_id) for v in lost) == [("cam1", 1), ("cam1", 3), ("cam1", 4)]
    assert not rec.pending

    rows = _rows(redis_server.url, cfg.redis.stream)
    by_frame = {}
    for r in rows:
        by_frame.setdefault((r["camera"], r["epoch"], r["frame_id"]), []).append(r)
    assert len(by_frame) == 10 and all(len(v) == 1 for v in by_frame.values()), "exactly one verdict per sent frame"
    lost_rows = [r for r in rows if r["reason"] == "lost"]
    assert all(r["reject"] == "1" and r["score"] == "nan" and r["threshold"] == "0.900000" for r in lost_rows)
    assert rec.metrics.lost.labels("cam1")._value.get() == 3

    # the worker's verdict for a frame already answered lost: refused by the claim, counted, not written twice
    late = make_verdict("cam1", 3, slot=3, t_acq_ns=clock.wall, t_verdict_ns=clock.wall, epoch=EPOCH)
    assert pub.publish([late]) and pub.suppressed == 1
    assert len(_rows(redis_server.url, cfg.redis.stream)) == 10


def test_a_restarted_reconciler_resumes_without_writing_a_frame_twice(redis_server):
    cfg, ledger, clock = _recorded(redis_server.url, "l:restart", 4)
    first = _reconciler(redis_server.url, cfg, clock)
    first.step(block_ms=10)
    clock.advance(2.0)
    assert len(first.step(block_ms=10)) == 4
    for i in range(4, 6):
        ledger.record(_header("cam0", i, clock.wall))
    second = _reconciler(redis_server.url, cfg, clock)  # a new process: resumes from the stored mark
    second.step(block_ms=10)
    assert sorted(s.frame_id for s in second.pending.values()) == [4, 5], "resumes after what was reconciled"
    lost = second.final_sweep()
    assert sorted(v.frame_id for v in lost) == [4, 5]
    assert len(_rows(redis_server.url, cfg.redis.stream)) == 6


def test_no_frame_is_claimed_lost_until_redis_has_been_back_for_the_grace(fresh_redis):
    """After an outage the workers' buffered verdicts must land before anything is called lost."""
    cfg, ledger, clock = _recorded(fresh_redis.url, "l:outage", 1)
    rec = _reconciler(fresh_redis.url, cfg, clock, socket_timeout=0.2, socket_connect_timeout=0.2)
    rec.step(block_ms=10)
    fresh_redis.stop()
    clock.advance(5.0)  # long past due, but Redis is away
    assert rec.step(block_ms=10) == [] and rec.up_since is None
    fresh_redis.start()
    assert rec.step(block_ms=10) == [], "back, but not for the grace yet"
    pub = VerdictPublisher(fresh_redis.url, cfg.redis.stream, 10_000, 1000)
    assert pub.publish([make_verdict("cam0", 0, t_acq_ns=clock.wall, t_verdict_ns=clock.wall, epoch=EPOCH)])
    clock.advance(1.1)
    assert rec.step(block_ms=10) == [] and not rec.pending, "the buffered verdict landed first: nothing lost"
    assert [r["reason"] for r in _rows(fresh_redis.url, cfg.redis.stream)] == ["pass"]
