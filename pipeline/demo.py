"""The embedded default (``python run_line.py``): simulated vial camera(s) -> ZeroMQ -> worker -> Redis with
the bundled checkpoint, a live status line, and a summary at the end."""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.live import Live
from rich.table import Table

from model.errors import InputError
from pipeline.config import (
    CameraConfig,
    CarouselConfig,
    LineConfig,
    MetricsConfig,
    PageConfig,
    RedisConfig,
    SyntheticSource,
    WorkerConfig,
)
from pipeline.redis_local import ensure_redis
from pipeline.stream_stats import StreamStats, last_id
from pipeline.supervisor import Supervisor
from pipeline.timing import read_timing, summarise

log = logging.getLogger("grdnet.demo")
DEMO_DEADLINE_MS = 1000.0


def split_frames(total: int, cameras: int) -> list[int]:
    """``--frames`` is the total over all cameras: camera i takes its share (the first ones one more)."""
    return [total // cameras + (1 if i < total % cameras else 0) for i in range(cameras)]


def local_endpoint(kind: str) -> str:
    """An ipc:// endpoint of this process's own in the temp folder (a one-command line on one host)."""
    return f"ipc://{Path(tempfile.gettempdir()) / f'grdnet-{kind}-{os.getpid()}.sock'}"


def page_config(port: int | None) -> PageConfig:
    """The live page of a one-command line: ``port`` if free, else any free one; None: no page."""
    from pipeline.page import port_for

    return PageConfig(port=port_for("127.0.0.1", port)) if port is not None else PageConfig(enabled=False)


def demo_config(
    frames: int,
    fps: float,
    cameras: int,
    redis_url: str,
    engine: str,
    stream: str,
    carousel: bool = True,
    page: int | None = None,
) -> LineConfig:
    """The demo's line. With ``carousel`` the cameras are stations 1..K of a carousel turning at ``fps`` units/s
    (each camera still takes ``fps`` frames/s), the ejector at least 4 pitches after the last, and units are
    decided."""
    shares = split_frames(frames, cameras)
    timing = tempfile.mkdtemp(prefix="grdnet-demo-timing-")
    return LineConfig(
        cameras=[
            CameraConfig(
                name=f"cam{i}",
                source="synthetic",
                fps=fps,
                max_frames=n,
                synthetic=SyntheticSource(seed=i, defect_rate=0.1),
            )
            for i, n in enumerate(shares)
            if n
        ],
        # cameras are not phase-locked and batching gains little on a few CPU cores: a short wait, at most one
        # frame per camera per batch
        worker=WorkerConfig(
            endpoints=[local_endpoint("demo")],
            engine=engine,
            max_batch=min(max(cameras, 1), 8),
            max_wait_ms=2,
            # a 256 px frame takes ~0.2 s of both cores in ONNX Runtime: a frame that lands while a batch of two
            # runs waits for it, so the demo's deadline allows two batches (a line sets it from its ejector)
            deadline_ms=DEMO_DEADLINE_MS,
        ),
        redis=RedisConfig(url=redis_url, stream=stream),
        carousel=CarouselConfig(
            units_per_minute=60 * fps,
            stations={f"cam{i}": i + 1 for i, n in enumerate(shares) if n},
            # at least 4 pitches after the last station, and room for the deadline at any --fps
            ejector=cameras + max(4, math.ceil((DEMO_DEADLINE_MS + 50) * fps / 1000) + 1),
        )
        if carousel
        else None,
        metrics=MetricsConfig(enabled=False),
        page=page_config(page),
        timing_dir=timing,
    )


def status_line(stats: StreamStats, total: int, elapsed: float) -> str:
    s = stats.summary()
    reasons = " ".join(f"{k} {v}" for k, v in s["by_reason"].items()) or "-"
    lat = s["latency_ms"]
    p = "" if math.isnan(lat["p50"]) else f"  latency p50 {lat['p50']:.0f} ms p99 {lat['p99']:.0f} ms"
    return (
        f"verdicts {stats.verdicts}/{total}  [{reasons}]  {stats.verdicts / max(elapsed, 1e-9):.1f}/s{p}"
        f"  {elapsed:.0f} s"
    )


def summary_table(s: dict) -> Table:
    t = Table(title="GRD-Net line: summary")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("verdicts", str(s["verdicts"]))
    for k, v in s["by_reason"].items():
        t.add_row(f"  {k}", str(v))
    for k, v in s["by_camera"].items():
        t.add_row(f"  camera {k}", str(v))
    t.add_row("throughput (frames/s)", f"{s['throughput_fps']:.1f}")
    for k, v in s["latency_ms"].items():
        t.add_row(f"acquisition to verdict {k} (ms)", f"{v:.1f}")
    t.add_row("duplicate verdicts", str(s["duplicates"]))
    units = s.get("units")
    if units:
        t.add_row("units (carousel) decided", str(units["units"]))
        t.add_row("  pass", str(units["pass"]))
        for k, v in units["eject_reasons"].items():
            t.add_row(f"  eject {k}", str(v))
        t.add_row("  decided after their deadline", str(units["decided_after_deadline"]))
    timing = s.get("timing")
    if timing and timing["frames"]:
        for stage, v in timing["stages_ms"].items():
            t.add_row(f"stage {stage} p50 / p99 (ms)", f"{v['p50']:.1f} / {v['p99']:.1f}")
        t.add_row("overhead: end-to-end p99 - engine p99 (ms)", f"{timing['overhead_p99_ms']:.1f}")
        t.add_row(
            "overhead per frame p50 / p99 (ms)",
            f"{timing['overhead_ms']['p50']:.1f} / {timing['overhead_ms']['p99']:.1f}",
        )
        t.add_row("batch sizes", " ".join(f"{k}:{v}" for k, v in timing["batch_histogram"].items()))
    return t


def run_line_until(
    cfg: LineConfig,
    total: int,
    timeout_s: float,
    record_dir: str | None = None,
    console: Console | None = None,
    attach=None,
) -> dict:
    """Start the line, follow the verdict stream until ``total`` verdicts (or timeout), drain, summarise.
    ``attach(supervisor)``, when given, runs once the line has started and returns a function called before the
    drain whose result goes into the summary as ``attached`` (benchmarks watching the running line)."""
    from engines.select import DEFAULT_CACHE, ensure_onnx

    console = console or Console(stderr=True)
    url, local = ensure_redis(cfg.redis.url)
    if local:
        console.print(f"started a local redis-server at {url}")
        cfg = cfg.model_copy(update={"redis": cfg.redis.model_copy(update={"url": url})})
    if cfg.worker.engine in ("auto", "onnxruntime"):  # export once here, not while frames wait
        ensure_onnx(
            Path(cfg.worker.checkpoint), Path(cfg.cache_dir or DEFAULT_CACHE), cfg.worker.max_batch, log=console.print
        )
    client = redis.Redis.from_url(url)
    after = last_id(client, cfg.redis.stream)
    stats = StreamStats()
    sup = Supervisor(cfg, record_dir)
    finish = None
    t0 = time.monotonic()
    try:
        sup.start()
        if sup.page_address():
            console.print(f"line page: {sup.page_address()}")
        finish = attach(sup) if attach else None
        with Live(status_line(stats, total, 0), console=console, refresh_per_second=4, transient=False) as live:
            while stats.verdicts < total and time.monotonic() - t0 < timeout_s:
                after = stats.read(client, cfg.redis.stream, after)
                sup.poll()
                live.update(status_line(stats, total, time.monotonic() - t0))
                if not sup.alive():
                    after = stats.read(client, cfg.redis.stream, after, block_ms=500)
                    break
    finally:
        attached = finish() if finish else None
        sup.stop()
        stats.read(client, cfg.redis.stream, after, block_ms=100)
        units = None
        if sup.cfg.carousel is not None and sup.cfg.carousel.t0_ns:
            from pipeline.audit import units_summary

            units = units_summary(client, sup.cfg.carousel.stream, sup.cfg.carousel.t0_ns)
        if local:
            local.stop()
    s = stats.summary()
    s.update(expected=total, wall_s=round(time.monotonic() - t0, 2), redis_url=url, stream=cfg.redis.stream)
    if units is not None:
        s["units"] = units
    if attached is not None:
        s["attached"] = attached
    if cfg.timing_dir:
        s["timing"] = summarise(read_timing(Path(cfg.timing_dir)))
    return s


def run_demo(
    frames: int,
    fps: float,
    cameras: int,
    redis_url: str,
    engine: str,
    summary_json: str | None,
    stream: str = "grdnet:verdicts",
    carousel: bool = True,
    page: int | None = None,
) -> int:
    console = Console(stderr=True)
    if frames < 1 or cameras < 1 or fps <= 0:
        raise InputError("--frames and --cameras must be >= 1 and --fps > 0")
    cfg = demo_config(frames, fps, cameras, redis_url, engine, stream, carousel, page)
    timeout = frames / (fps * cameras) + 180
    return report_run(run_line_until(cfg, frames, timeout, console=console), frames, summary_json)


def report_run(s: dict, total: int, summary_json: str | None) -> int:
    """Print the summary table, write the JSON; exit code 1 when a frame is missing its verdict."""
    Console().print(summary_table(s))
    if summary_json:
        Path(summary_json).write_text(json.dumps(s, indent=1))
    if s["verdicts"] != total:
        Console(stderr=True).print(f"[red]{s['verdicts']} verdicts for {total} frames[/red]")
        return 1
    return 0
