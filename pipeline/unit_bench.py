"""``run_line.py unit-bench``: the figure a line buyer asks for. The line on a simulated carousel (2 stations,
synthetic cameras triggered by the encoder, the ejector read with a consumer group) at a sweep of pitch rates:
the highest rate in units per minute at which no unit reaches the ejector undecided and no unit is ejected for
lateness, with the decision slack (ejector time minus decision time) at each rate; then one run with 1 % of
triggers dropped, audited against the ledger. Prints figures; asserts nothing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from pipeline.audit import audit_units
from pipeline.config import (
    CameraConfig,
    CarouselConfig,
    LedgerConfig,
    LineConfig,
    MetricsConfig,
    PageConfig,
    RedisConfig,
    SyntheticSource,
    WorkerConfig,
)
from pipeline.ejector import EjectorSim
from pipeline.supervisor import Supervisor
from pipeline.units import Timeline

STATIONS = {"body": 1, "meniscus": 2}
SLACK_PITCHES = 4  # pitches from the last station to the ejector
TIMING_REASONS = ("late", "overload", "lost", "late_decision", "engine_error")


def carousel_config(
    checkpoint: str, units_per_minute: float, redis_url: str, drop_rate: float = 0.0, engine: str = "auto"
) -> LineConfig:
    pitch_ms = 60_000 / units_per_minute
    slack_ms = SLACK_PITCHES * pitch_ms - 50
    synth = {"pool": 16, "trigger_drop_rate": drop_rate}
    return LineConfig(
        cameras=[CameraConfig(name=cam, synthetic=SyntheticSource(seed=i, **synth)) for i, cam in enumerate(STATIONS)],
        worker=WorkerConfig(
            endpoints=[f"ipc://{tempfile.mkdtemp(prefix='grdnet-ub-')}/w.sock"],
            checkpoint=checkpoint,
            engine=engine,
            max_batch=2,
            max_wait_ms=2,
            deadline_ms=0.6 * slack_ms,  # what is left covers inference and the writes
            archive={"enabled": False},
        ),
        redis=RedisConfig(url=redis_url, stream=f"grdnet:ub:{time.time_ns()}"),
        ledger=LedgerConfig(grace_s=1.0),
        carousel=CarouselConfig(
            units_per_minute=units_per_minute,
            pockets=24,
            stations=STATIONS,
            ejector=max(STATIONS.values()) + SLACK_PITCHES,
            stream=f"grdnet:ub-units:{time.time_ns()}",
            check_capacity=False,  # the bench runs past capacity on purpose: that is where it finds the limit
        ),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
    )


def unit_point(cfg: LineConfig, seconds: float) -> dict:
    """Run the carousel line for ``seconds`` of carousel time; the ejector's counts and the ledger audit."""
    c = cfg.carousel
    sup = Supervisor(cfg)
    client = redis.Redis.from_url(cfg.redis.url)
    try:
        sup.start()
        tl = Timeline.of(c, sup.cfg.carousel.t0_ns)
        ejector = EjectorSim(client, c.stream, tl).start()
        time.sleep(max(0.0, (tl.t0_ns - time.time_ns()) / 1e9) + seconds)
        ejector.stop.set()
        ejector.thread.join(10)
    finally:
        sup.stop()
    last = max((int(f[b"unit"]) for _, f in client.xrange(c.stream)), default=-1)
    ejector.finish(last)
    s = ejector.summary()
    timing = {k: v for k, v in s["eject_reasons"].items() if k.split(":")[0] in TIMING_REASONS}
    return {
        "units_per_minute": c.units_per_minute,
        **s,
        "timing_ejects": sum(timing.values()),
        "timing_eject_reasons": timing,
        "audit": audit_units(client, cfg.redis.stream, c),
    }


def run_unit_bench(
    checkpoint: str, rates: list[float], seconds: float, redis_url: str, engine: str = "auto", log=print
) -> dict:
    from pipeline.redis_local import ensure_redis

    url, local = ensure_redis(redis_url)
    try:
        points = []
        for upm in rates:
            p = unit_point(carousel_config(checkpoint, upm, url, engine=engine), seconds)
            log(
                f"{upm:.0f} units/min: {p['units']} units, pass {p['pass']}, eject {p['eject']} "
                f"(timing {p['timing_ejects']}), undecided {p['undecided']}, slack p50 "
                f"{p['decision_slack_ms']['p50']:.0f} ms, worst 1 % {p['decision_slack_ms']['p1']:.0f} ms"
            )
            points.append(p)
        holding = [p for p in points if p["undecided"] == 0 and p["timing_ejects"] == 0]
        best = max(holding, key=lambda p: p["units_per_minute"]) if holding else None
        safe = best["units_per_minute"] if best else min(rates)
        drops = unit_point(carousel_config(checkpoint, safe, url, drop_rate=0.01, engine=engine), seconds * 2)
        log(f"1 % dropped triggers at {safe:.0f} units/min: {drops['audit']}")
        return {
            "points": points,
            "max_units_per_minute": best["units_per_minute"] if best else None,
            "dropped_triggers": drops,
        }
    finally:
        if local:
            local.stop()


def write_unit_bench(result: dict, path: Path) -> None:
    import json

    Path(path).write_text(json.dumps(result, indent=1, default=str))
