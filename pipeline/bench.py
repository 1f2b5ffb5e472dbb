"""``run_line.py bench``: latency and throughput of the real line, per stage, against the engine alone measured
in the same run, with sweeps of offered rate (past saturation), max batch and max wait.

Each point starts the line (supervisor, camera processes with a pre-rendered frame pool so the renderer is not
what is measured, worker, redis-server), offers a fixed rate for a fixed time, and reads back the verdict stream
and the per-frame timing logs. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from pipeline.config import (
    CameraConfig,
    LedgerConfig,
    LineConfig,
    MetricsConfig,
    PageConfig,
    RedisConfig,
    SyntheticSource,
    WorkerConfig,
)
from pipeline.demo import page_config, run_line_until
from pipeline.timing import read_timing, summarise

RATE_FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5)


@dataclass
class BenchSettings:
    checkpoint: str
    cache_dir: str
    engine: str = "auto"
    threads: int | None = None
    cameras: int = 2
    max_batch: int = 4
    max_wait_ms: float = 2.0
    deadline_ms: float = 250.0
    default_rate: float = 20.0  # frames/s over all cameras: the demo's 2 cameras x 10 fps
    seconds: float = 8.0
    sweeps: tuple[str, ...] = ("rate", "batch", "wait")
    redis_url: str = "redis://127.0.0.1:6379/0"


def engine_alone(s: BenchSettings, batches: list[int], log=print) -> dict[int, dict]:
    """The line's engine (same kind, threads, frames at the model's size) timed alone, in this process."""
    from engines.bench import time_engine
    from engines.export import parity_frames
    from engines.select import open_engine

    engine = open_engine(s.engine, Path(s.checkpoint), Path(s.cache_dir), max(batches), s.threads, log=log)
    frames = parity_frames(engine.image_size, engine.channels, max(batches), seed=5)
    out = {}
    for b in batches:
        row = time_engine(engine, frames, b, min_seconds=3.0)
        out[b] = {"fps": row["fps"], "p50_ms": row["p50_ms"], "p99_ms": row["p99_ms"]}
        log(f"engine alone ({engine.name}) batch {b}: {row['fps']:.1f} frames/s, p99 {row['p99_ms']:.1f} ms")
    return out


def line_point(
    s: BenchSettings,
    rate: float,
    max_batch: int,
    max_wait_ms: float,
    image_size: int,
    ledger: bool = True,
    page: bool = False,
    attach=None,
) -> dict:
    """Offer ``rate`` frames/s (over all cameras) for ``s.seconds``; judge what the line did with them. ``page``
    serves the live page during the point (``attach`` may watch it, see page_bench)."""
    per_cam = rate / s.cameras
    frames = max(1, int(per_cam * s.seconds))
    timing_dir = tempfile.mkdtemp(prefix="grdnet-bench-")
    sock = Path(timing_dir) / "w.sock"
    cfg = LineConfig(
        cameras=[
            CameraConfig(
                name=f"cam{i}",
                fps=per_cam,
                max_frames=frames,
                synthetic=SyntheticSource(seed=i, size=image_size, pool=16),
            )
            for i in range(s.cameras)
        ],
        worker=WorkerConfig(
            endpoints=[f"ipc://{sock}"],
            checkpoint=s.checkpoint,
            engine=s.engine,
            threads=s.threads,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            deadline_ms=s.deadline_ms,
            archive={"enabled": False},
        ),
        redis=RedisConfig(url=s.redis_url, stream="grdnet:bench"),
        ledger=LedgerConfig(enabled=ledger),
        metrics=MetricsConfig(enabled=False),
        page=page_config(8088) if page else PageConfig(enabled=False),
        cache_dir=s.cache_dir,
        timing_dir=timing_dir,
    )
    total = frames * s.cameras
    summary = run_line_until(
        cfg, total, timeout_s=s.seconds * 4 + 120, console=Console(stderr=True, quiet=True), attach=attach
    )
    rows = read_timing(Path(timing_dir))
    timing = summarise(rows)
    inferred = len(rows)
    if rows:
        span = (max(r["t_written"] for r in rows) - min(r["t_recv"] for r in rows)) / 1e9
    else:
        span = float("nan")
    return {
        "offered_fps": rate,
        "ledger": ledger,
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "frames": total,
        "verdicts": summary["verdicts"],
        "by_reason": summary["by_reason"],
        "line_fps": inferred / span if span and span > 0 else float("nan"),
        "rejected_unjudged": sum(v for k, v in summary["by_reason"].items() if k in ("late", "overload")),
        "attached": summary.get("attached"),
        **timing,
        "_rows": rows,  # per-frame stage times, for the report's CDF; not written to JSON
    }


def find_knee(points: list[dict]) -> dict | None:
    """The highest offered rate the line still keeps up with: no late/overload, throughput >= 95 % of offered."""
    ok = [p for p in points if p["rejected_unjudged"] == 0 and p["line_fps"] >= 0.95 * p["offered_fps"]]
    return max(ok, key=lambda p: p["offered_fps"]) if ok else None


def saturation(result: dict, max_batch: int, capacity: float) -> dict:
    """Line throughput at saturation at ``max_batch``: the median over every point offered at least the engine's
    capacity at that batch size (one noisy point can neither make nor break it), with the points themselves."""
    points = [p for p in result.get("rate_sweep", []) if p["offered_fps"] >= capacity]
    points += [p for p in result.get("batch_sweep", []) if p["max_batch"] == max_batch]
    fps = [p["line_fps"] for p in points if np.isfinite(p["line_fps"])]
    return {
        "line_fps": float(np.median(fps)) if fps else float("nan"),
        "line_fps_saturated_points": fps,
        "line_over_engine": float(np.median(fps)) / capacity if fps else float("nan"),
    }


def ledger_round_trips(url: str, n: int = 2000) -> dict:
    """What the ledger adds per frame, timed directly: the camera's write-ahead record (one round trip) and the
    worker's write-once verdict against a plain XADD, per batch of 4 (ms)."""
    import time

    import redis

    from pipeline.ledger import Ledger
    from pipeline.line_keys import LineKeys
    from pipeline.publisher import VerdictPublisher
    from pipeline.verdicts import Verdict
    from pipeline.wire import FrameHeader

    client = redis.Redis.from_url(url)
    keys = LineKeys(f"grdnet:ledgerbench:{time.time_ns()}")
    ledger = Ledger(client, keys, "cam0", 100_000, 1000)
    t_record = []
    for i in range(n):
        t = time.perf_counter()
        ledger.record(FrameHeader("cam0", i, i % 24, time.time_ns(), (8, 8), epoch=1))
        t_record.append((time.perf_counter() - t) * 1e3)
    out = {"record_ms_p50": float(np.median(t_record)), "record_ms_p99": float(np.percentile(t_record, 99))}
    for claim in (True, False):
        pub = VerdictPublisher(url, keys.stream + (":claimed" if claim else ":plain"), 100_000, 1000, client=client)
        times = []
        for b in range(n // 4):
            batch = [
                Verdict(
                    camera="cam0",
                    frame_id=4 * b + j,
                    slot=0,
                    t_acq_ns=1,
                    t_verdict_ns=2,
                    score=0.1,
                    threshold=0.5,
                    reason="pass",
                    model="m",
                    epoch=1,
                    claim=claim,
                )
                for j in range(4)
            ]
            t = time.perf_counter()
            pub.publish(batch)
            times.append((time.perf_counter() - t) * 1e3)
        out[f"verdict_batch4_ms_p50_{'claim' if claim else 'plain'}"] = float(np.median(times))
    client.delete(keys.ledger, keys.last_sent, keys.stream + ":claimed", keys.stream + ":plain")
    for k in client.scan_iter(f"{keys.stream}:claimed:claim:*", count=1000):
        client.delete(k)
    return out


def ledger_cost(s: BenchSettings, capacity: float, image_size: int, log=print, pairs: int = 3) -> dict:
    """Throughput at saturation (1.25 x the engine's capacity) with and without the frame ledger, in alternating
    pairs of points so that drift of a shared machine falls on both: the median line/engine ratio of each."""
    ratios: dict[bool, list[float]] = {True: [], False: []}
    for i in range(pairs):
        for on in (True, False) if i % 2 == 0 else (False, True):
            p = line_point(s, 1.25 * capacity, s.max_batch, s.max_wait_ms, image_size, ledger=on)
            ratios[on].append(p["line_fps"] / capacity)
            log(f"ledger {'on ' if on else 'off'}: line {p['line_fps']:.2f}/s = {ratios[on][-1]:.3f} x engine")
    with_l, without = float(np.median(ratios[True])), float(np.median(ratios[False]))
    trips = ledger_round_trips(s.redis_url)
    log(f"ledger round trips: {trips}")
    return {
        "round_trips": trips,
        "line_over_engine_with_ledger": with_l,
        "line_over_engine_without_ledger": without,
        "cost_fraction": 1 - with_l / without,
        "points": {"with": ratios[True], "without": ratios[False]},
    }


def run_bench(s: BenchSettings, log=print) -> dict:
    from model.checkpoint import read_meta
    from pipeline.redis_local import ensure_redis

    meta = read_meta(Path(s.checkpoint))
    url, local = ensure_redis(s.redis_url)
    s.redis_url = url
    try:
        batches = sorted({1, 2, 4, s.max_batch} | ({8} if "batch" in s.sweeps else set()))
        alone = engine_alone(s, batches, log)
        capacity = alone[s.max_batch]["fps"]
        result: dict = {"settings": {k: v for k, v in s.__dict__.items()}, "model": meta.id, "engine_alone": alone}
        default = line_point(s, s.default_rate, s.max_batch, s.max_wait_ms, meta.image_size)
        log(f"default rate {s.default_rate:.0f}/s: e2e p99 {default['stages_ms']['end_to_end']['p99']:.1f} ms")
        result["default_point"] = default
        if "rate" in s.sweeps:
            result["rate_sweep"] = []
            for f in RATE_FRACTIONS:
                p = line_point(s, f * capacity, s.max_batch, s.max_wait_ms, meta.image_size)
                log(
                    f"offered {p['offered_fps']:.1f}/s: line {p['line_fps']:.1f}/s, e2e p99 "
                    f"{p['stages_ms']['end_to_end']['p99']:.1f} ms, late/overload {p['rejected_unjudged']}"
                )
                result["rate_sweep"].append(p)
            result["knee"] = find_knee(result["rate_sweep"])
            half = min(result["rate_sweep"], key=lambda p: abs(p["offered_fps"] - 0.5 * capacity))
            result["half_saturation"] = {
                "offered_fps": half["offered_fps"],
                "e2e_p99_ms": half["stages_ms"]["end_to_end"]["p99"],
                "bound_ms": alone[s.max_batch]["p99_ms"] + s.max_wait_ms + 5.0,
            }
        if "batch" in s.sweeps:
            result["batch_sweep"] = []
            for b in (1, 2, 4, 8):
                p = line_point(s, 1.25 * alone[b]["fps"], b, s.max_wait_ms, meta.image_size)
                p["engine_alone_fps"] = alone[b]["fps"]
                log(f"max batch {b}: line {p['line_fps']:.1f}/s vs engine alone {alone[b]['fps']:.1f}/s")
                result["batch_sweep"].append(p)
        if "wait" in s.sweeps:
            result["wait_sweep"] = []
            for w in (0.0, 2.0, 5.0, 10.0):
                p = line_point(s, 0.5 * capacity, s.max_batch, w, meta.image_size)
                log(f"max wait {w:.0f} ms: e2e p99 {p['stages_ms']['end_to_end']['p99']:.1f} ms")
                result["wait_sweep"].append(p)
        if "ledger" in s.sweeps:
            result["ledger_cost"] = ledger_cost(s, capacity, meta.image_size, log)
        if "page" in s.sweeps:
            from pipeline.page_bench import page_cost

            def point(on: bool, attach) -> dict:
                return line_point(
                    s, 1.25 * capacity, s.max_batch, s.max_wait_ms, meta.image_size, page=on, attach=attach
                )

            result["page_cost"] = page_cost(point, capacity, log)
        result["engine_fps"] = capacity
        result["e2e_p99_ms"] = default["stages_ms"]["end_to_end"]["p99"]
        result.update(saturation(result, s.max_batch, capacity))
        return result
    finally:
        if local:
            local.stop()


def print_tables(result: dict, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(title=f"line vs offered rate ({result['model']}, engine alone {result['engine_fps']:.1f} frames/s)")
    for c in (
        "offered/s",
        "line/s",
        "late+overload",
        "transport p99",
        "queue p99",
        "engine p99",
        "write p99",
        "e2e p50",
        "e2e p99",
        "batches",
    ):
        t.add_column(c, justify="right")
    for p in result.get("rate_sweep", [result["default_point"]]):
        st = p["stages_ms"]
        t.add_row(
            f"{p['offered_fps']:.1f}",
            f"{p['line_fps']:.1f}",
            str(p["rejected_unjudged"]),
            *(f"{st[k]['p99']:.1f}" for k in ("transport", "queue", "engine", "write")),
            f"{st['end_to_end']['p50']:.1f}",
            f"{st['end_to_end']['p99']:.1f}",
            " ".join(f"{k}:{v}" for k, v in p["batch_histogram"].items()),
        )
    console.print(t)
    knee = result.get("knee")
    console.print(
        f"engine_fps {result['engine_fps']:.1f}  line_fps (saturation) {result['line_fps']:.1f} "
        f"({result['line_fps'] / result['engine_fps']:.2f} x engine)  e2e_p99_ms at "
        f"{result['settings']['default_rate']:.0f}/s {result['e2e_p99_ms']:.1f}"
        + (f"  knee at {knee['offered_fps']:.1f}/s" if knee else "")
    )
    if "ledger_cost" in result:
        c = result["ledger_cost"]
        console.print(
            f"ledger at saturation: line/engine {c['line_over_engine_with_ledger']:.3f} with, "
            f"{c['line_over_engine_without_ledger']:.3f} without: cost {100 * c['cost_fraction']:.1f} %"
        )
    if "page_cost" in result:
        c = result["page_cost"]
        console.print(
            f"line page at saturation, watched by headless chromium: line/engine {c['line_over_engine_with_page']:.3f}"
            f" with, {c['line_over_engine_without_page']:.3f} without ({100 * c['throughput_cost_fraction']:.1f} %);"
            f" CPU share of all cores: page {100 * c['page_cpu_share']:.2f} %, browser"
            f" {100 * c['browser_cpu_share']:.2f} %; updates/s in the browser"
            f" {', '.join(f'{u:.1f}' for u in c['updates_per_s'])}"
        )
    if "half_saturation" in result:
        h = result["half_saturation"]
        console.print(
            f"half saturation ({h['offered_fps']:.1f}/s): e2e p99 {h['e2e_p99_ms']:.1f} ms, bound "
            f"(engine p99 + max wait + 5 ms) {h['bound_ms']:.1f} ms"
        )


def write_json(result: dict, path: Path) -> None:
    def clean(o):
        if isinstance(o, float) and not np.isfinite(o):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items() if not str(k).startswith("_")}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    Path(path).write_text(json.dumps(clean(result), indent=1))
