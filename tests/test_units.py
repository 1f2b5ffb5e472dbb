"""From frames to units: the aggregator's rules (pure, explicit clock), the carousel config's refusals, and the
line end to end on a simulated carousel with dropped and repeated triggers, read by a simulated ejector."""

import json
import time

import pytest
import redis

from pipeline.config import (
    CameraConfig,
    CarouselConfig,
    LedgerConfig,
    LineConfig,
    MetricsConfig,
    PageConfig,
    RedisConfig,
    WorkerConfig,
)
from pipeline.units import Timeline, UnitAggregator

CAROUSEL = CarouselConfig(units_per_minute=600, pockets=8, stations={"body": 1, "meniscus": 3}, ejector=6)
T0 = 1_000_000_000_000
TL = Timeline.of(CAROUSEL, T0)  # 100 ms a pitch, 50 ms margin


def units_by_id(client, stream):
    return {int(f[b"unit"]): {k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange(stream)}


def _v(camera, trigger, reason="pass", frame_id=0):
    return {
        "camera": camera,
        "trigger": str(trigger),
        "reason": reason,
        "score": "0.1",
        "epoch": "1",
        "frame_id": str(frame_id),
    }


def _feed(agg, units, skip=(), repeat=(), reasons=None):
    """Station verdicts for ``units`` in trigger order, as the cameras would produce them."""
    reasons = reasons or {}
    events = []
    for cam, station in CAROUSEL.stations.items():
        for u in units:
            if (cam, u) in skip:
                continue
            events += [(u + station, cam)] * (2 if (cam, u) in repeat else 1)
    for trigger, cam in sorted(events):
        agg.add(_v(cam, trigger, reasons.get((cam, trigger - CAROUSEL.stations[cam]), "pass")))


def test_a_unit_passes_only_when_every_station_passed_it_once():
    agg = UnitAggregator(CAROUSEL, TL, 0)
    _feed(
        agg,
        range(8),
        skip={("body", 2)},
        repeat={("meniscus", 4)},
        reasons={("meniscus", 5): "anomaly", ("body", 6): "lost"},
    )
    decisions = agg.due(TL.t0_ns) + [d for u in range(8) for d in agg.due(TL.deadline_ns(u))]
    decided = {d.unit: d for d in decisions}
    assert sorted(decided) == list(range(8))
    assert decided[2].reason == "missing:body" and decided[2].eject
    assert decided[4].reason == "doubtful_trigger:meniscus" and decided[4].stations["meniscus"]["frames"] == 2
    assert decided[5].reason == "anomaly:meniscus" and decided[6].reason == "lost:body"
    assert all(not decided[u].eject and decided[u].reason == "pass" for u in (0, 1, 3, 7))
    assert decided[3].pocket == 3 and json.loads(decided[3].fields()["stations"])["body"]["reason"] == "pass"


def test_units_are_decided_early_when_complete_and_at_the_deadline_otherwise():
    agg = UnitAggregator(CAROUSEL, TL, 0)
    _feed(agg, range(3))
    early = agg.due(TL.t0_ns)  # long before any deadline
    assert [d.unit for d in early] == [0, 1], "unit 2 waits: no later trigger yet confirms it was not repeated"
    assert all(d.t_decision_ns < d.t_deadline_ns for d in early)
    give_up = TL.deadline_ns(2) - TL.margin_ns  # an unconfirmed unit is decided one margin before its deadline
    assert agg.due(give_up - 1) == []
    (late,) = agg.due(give_up)
    assert late.unit == 2 and late.reason == "pass" and late.t_decision_ns < late.t_deadline_ns
    (nobody,) = agg.due(TL.deadline_ns(3) - TL.margin_ns)
    assert nobody.reason == "missing:body", "a unit no station saw is ejected, never silent"
    agg2 = UnitAggregator(CAROUSEL, TL, 0)
    _feed(agg2, range(1))
    (d,) = agg2.due(TL.deadline_ns(0) + 5_000_000)
    assert d.reason == "late_decision" and d.eject, "a pass decided after the deadline is an eject"
    agg2.add(_v("body", 1))  # a verdict for a unit already decided: counted, changes nothing
    assert agg2.after_decision == 1


@pytest.mark.parametrize(
    "change,message",
    [
        ({"stations": {"body": 1, "meniscus": 7}}, "station meniscus at pitch 7 is not between"),
        ({"stations": {"body": 1}}, "not placed: ['meniscus']"),
        ({"units_per_minute": 3000}, "no unit could be judged in time"),
    ],
)
def test_carousel_configs_that_cannot_work_are_refused_with_one_line(change, message):
    raw = {**CAROUSEL.model_dump(), **change}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        LineConfig(
            cameras=[CameraConfig(name="body"), CameraConfig(name="meniscus")],
            worker=WorkerConfig(deadline_ms=100),
            carousel=raw,
        )


def carousel_line(cameras, carousel, endpoint, checkpoint, cache, deadline_ms, redis, ledger) -> LineConfig:
    """A one-worker carousel line on the tiny model (ONNX Runtime, one thread), no metrics, page or archive."""
    return LineConfig(
        cameras=cameras,
        worker=WorkerConfig(
            endpoints=[endpoint],
            checkpoint=str(checkpoint),
            engine="onnxruntime",
            threads=1,
            deadline_ms=deadline_ms,
            archive={"enabled": False},
        ),
        redis=redis,
        ledger=ledger,
        carousel=carousel,
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
        cache_dir=str(cache),
    )


def test_carousel_line_end_to_end_with_dropped_and_repeated_triggers(tmp_path, tiny_checkpoint, engine_cache):
    from pipeline.audit import audit_units, trace_unit
    from pipeline.ejector import EjectorSim
    from pipeline.redis_local import LocalRedis
    from pipeline.supervisor import Supervisor

    server = LocalRedis().start()
    carousel = CarouselConfig(
        units_per_minute=240,
        pockets=24,
        stations={"body": 1, "meniscus": 3},
        ejector=7,
        start_lead_s=1.0,
        stream="units:e2e",
    )
    synth = {"size": 96, "pool": 8}
    cfg = carousel_line(
        [
            CameraConfig(name="body", synthetic={**synth, "seed": 1, "trigger_drop_rate": 0.06}),
            CameraConfig(name="meniscus", synthetic={**synth, "seed": 2, "trigger_repeat_rate": 0.06}),
        ],
        carousel,
        f"ipc://{tmp_path}/w.sock",
        tiny_checkpoint,
        engine_cache,
        deadline_ms=500,
        redis=RedisConfig(url=server.url, stream="units:v"),
        ledger=LedgerConfig(grace_s=0.2),
    )
    sup = Supervisor(cfg)
    try:
        sup.start()
        tl = Timeline.of(carousel, sup.cfg.carousel.t0_ns)
        client = redis.Redis.from_url(server.url)
        ejector = EjectorSim(client, carousel.stream, tl).start()
        time.sleep(max(0.0, (tl.t0_ns - time.time_ns()) / 1e9) + 14.0)  # ~56 units loaded
        ejector.stop.set()  # the line stops, and the carousel with it
        ejector.thread.join(10)
        sup.stop()
        last = max(int(f[b"unit"]) for _, f in client.xrange(carousel.stream))
        ejector.finish(last)
        s = ejector.summary()
        print(json.dumps(s, indent=1))
        a = audit_units(client, cfg.redis.stream, carousel)
        print(json.dumps(a, indent=1))
        assert a["units"] == last + 1 and a["units_without_decision"] == [], "one decision per unit, every unit"
        assert a["slot_faults"] >= 2, "the run exercised missed and doubled triggers"
        assert a["slot_faults_ejected_with_reason"] == a["slot_faults"], "every affected unit ejected, with its reason"
        assert a["unaffected_ejected_for_slot_errors"] == 0 and a["passed_without_every_station"] == 0
        assert s["undecided"] == 0 and s["passed_without_every_station"] == 0
        # traceability: a unit's decision and the frame verdicts behind it, by unit id
        passed = next(u for u, d in sorted(units_by_id(client, carousel.stream).items()) if d["decision"] == "pass")
        t = trace_unit(client, cfg.redis.stream, carousel.stream, passed)
        assert all(f is not None and f["reason"] == "pass" for f in t["frames"].values())
        assert {c: f["frame_id"] for c, f in t["frames"].items()} == {
            c: st["frame_id"] for c, st in t["stations"].items()
        }
        assert {c: int(f["trigger"]) for c, f in t["frames"].items()} == {
            c: passed + p for c, p in carousel.stations.items()
        }
        assert s["units"] == last + 1 and s["pass"] > 0
    finally:
        sup.stop()
        server.stop()


def test_a_camera_frame_counter_becomes_ticks_with_holes_and_repeats():
    from pipeline.units import DeviceSequence

    seq = DeviceSequence(TL)
    t = TL.t0_ns + 5 * TL.period_ns + 3_000_000  # the first frame, 3 ms after tick 5
    assert seq.tick(1, t) == 5
    assert [seq.tick(s, t) for s in (2, 3, 5, 5, 6)] == [6, 7, 9, 9, 10], "a lost buffer is a hole, a repeat doubles"
    assert seq.tick(1, TL.t0_ns + 40 * TL.period_ns) == 40, "a counter that runs back (reopen) is placed by time"
    assert seq.frame_tick(77, 3, t) == 77, "a source's own trigger wins"
    assert seq.frame_tick(None, None, TL.t0_ns + 12 * TL.period_ns) == 12, "no trigger, no counter: by time"


def test_genicam_frames_carry_the_device_frame_counter():
    from pipeline.config import GenICamSource
    from pipeline.sources.genicam import GenICamCamera

    it = GenICamCamera(GenICamSource(serial_number="0"), fps=50).frames()
    seqs = [next(it).device_seq for _ in range(4)]
    it.close()
    assert all(s is not None for s in seqs) and seqs == sorted(seqs) and len(set(seqs)) == 4, seqs


def test_carousel_rate_check_states_need_and_measured_capacity():
    from engines.capacity import CapacityError, check_carousel_rate

    line = check_carousel_rate(240, 2, [10.0, 5.0], 0.8)  # 8 frames/s needed, 12 allowed
    assert "needs 8.0 frames/s" in line and "15.0 frames/s" in line
    with pytest.raises(CapacityError, match=r"needs 10.0 frames/s.*slow the carousel to 240 units/min"):
        check_carousel_rate(300, 2, [10.0], 0.8)


def test_engine_frames_per_s_is_measured_on_the_engine_itself(tiny_onnx):
    from engines.capacity import measure_frames_per_s
    from engines.ort_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(tiny_onnx, threads=1, max_batch=4)
    calls = []
    real = engine.infer
    engine.infer = lambda f, r: calls.append(len(f)) or real(f, r)
    fps = measure_frames_per_s(engine, batch=8, min_seconds=0.2, min_batches=3)
    assert fps > 0 and len(calls) >= 4 and set(calls) == {4}, "warm-up plus whole batches at the engine's max"


def test_a_carousel_faster_than_the_measured_workers_is_refused_at_start(tmp_path, tiny_checkpoint, engine_cache):
    from engines.capacity import CapacityError
    from pipeline.supervisor import Supervisor

    carousel = CarouselConfig(
        units_per_minute=600_000, stations={"body": 1, "meniscus": 3}, ejector=50, decision_margin_ms=0
    )
    cfg = carousel_line(
        [CameraConfig(name="body", synthetic={"size": 96}), CameraConfig(name="meniscus", synthetic={"size": 96})],
        carousel,
        f"ipc://{tmp_path}/w.sock",
        tiny_checkpoint,
        engine_cache,
        deadline_ms=1,
        redis=RedisConfig(url="redis://127.0.0.1:1/0"),
        ledger=LedgerConfig(enabled=False),
    )
    sup = Supervisor(cfg)
    with pytest.raises(CapacityError, match=r"600000 units/min x 2 stations needs 20000.0 frames/s"):
        sup.start()
    assert sup.capacity[0].value > 0, "the worker measured its engine before saying ready"
    assert not sup.alive() and all(m.proc is None for m in sup.cameras), "no camera started, no worker left"


def test_a_triggered_camera_holds_frames_for_a_late_host_and_loses_only_past_its_buffers():
    from pipeline.config import SyntheticSource
    from pipeline.sources.synthetic import triggered_frames

    period_ms = 40
    tl = Timeline(time.time_ns() + 100_000_000, period_ms * 1_000_000, ejector=50, margin_ns=0)
    frames = triggered_frames(SyntheticSource(size=32, pool=2, trigger_buffers=4), tl)
    first = next(frames)
    assert first.t_acq_ns == tl.t0_ns + first.trigger * tl.period_ns, "acquired at its trigger"
    time.sleep(2.5 * period_ms / 1000)  # the host is busy for 2.5 pitches: inside the camera's 4 buffers
    late = [next(frames) for _ in range(3)]
    assert [f.trigger for f in late] == [first.trigger + 1, first.trigger + 2, first.trigger + 3], "none lost"
    assert all(f.t_acq_ns == tl.t0_ns + f.trigger * tl.period_ns for f in late), "stamped at exposure, not fetch"
    time.sleep(9 * period_ms / 1000)  # 9 pitches away: the buffers overflowed, the oldest triggers are gone
    after = next(frames)
    assert after.trigger > late[-1].trigger + 1, "triggers past the buffers are lost"
    assert after.trigger >= tl.tick_at(time.time_ns()) - 4, "the camera keeps its newest buffers"
