"""Process entry points: one per camera (source -> PUSH) and one per worker (PULL -> engine -> Redis).

Both take the line config as JSON (validated again inside), stop cleanly on SIGTERM/SIGINT, and exit 0 when
they finished their work; the supervisor restarts only a process that crashed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import zmq

from pipeline.config import CameraConfig, LineConfig

log = logging.getLogger("grdnet")


def setup_logging(name: str) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s {name} %(levelname)s %(message)s", force=True
    )


class StopFlag:
    """Set by SIGTERM/SIGINT; checked by the loops."""

    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        self.set = True


def start_metrics(cfg: LineConfig, registry, base_port: int, index: int) -> None:
    """This process's /metrics endpoint: ``base_port + index`` (0: any free port), when metrics are on."""
    from pipeline.metrics import serve

    if cfg.metrics.enabled:
        port = serve(registry, cfg.metrics.host, base_port + index if base_port else 0)
        log.info("metrics on http://%s:%d/metrics", cfg.metrics.host, port)


def stamp_header(sf, cam: CameraConfig, counter: int, epoch: int = 0, carousel=None):
    """The wire header of a source frame: a replayed frame keeps its recorded camera, frame_id and slot; otherwise
    frame_id is the camera's counter (continued from the ledger after a restart) and slot = first + counter mod
    count. ``epoch`` is this camera process's start: a restart or a second replay is a new epoch. On a carousel
    the frame carries its trigger (``sf.trigger``, set by the camera loop) and its slot is the pocket of the unit
    it shows."""
    from pipeline.wire import FrameHeader

    trigger, slot = sf.trigger, sf.slot
    if carousel is not None and slot is None:
        slot = (trigger - carousel.stations[cam.name]) % carousel.pockets
    return FrameHeader(
        camera=sf.camera or cam.name,
        frame_id=sf.frame_id if sf.frame_id is not None else counter,
        slot=slot if slot is not None else cam.slots.first + counter % cam.slots.count,
        t_acq_ns=sf.t_acq_ns,
        shape=tuple(sf.pixels.shape),
        epoch=epoch,
        trigger=max(trigger, 0) if trigger is not None else None,
    )


def camera_source(cam: CameraConfig, index: int, on_reconnect=None, carousel=None) -> Iterator:
    from pipeline.sources.frames import SourceFrame

    if cam.source == "synthetic" and carousel is not None:
        from pipeline.sources.synthetic import triggered_frames
        from pipeline.units import Timeline

        return triggered_frames(cam.synthetic, Timeline.of(carousel, carousel.t0_ns), index)
    if carousel is not None:
        log.warning(
            "source %s reports no encoder tick: GenICam frames are placed by the camera's frame counter (a lost "
            "buffer is a missing station, a repeated counter a doubled trigger), frames without one by "
            "acquisition time",
            cam.source,
        )
    if cam.source == "synthetic":
        from pipeline.sources.synthetic import synthetic_frames

        return (SourceFrame(px, t) for px, t in synthetic_frames(cam.synthetic, cam.fps, index))
    if cam.source == "replay":
        from pipeline.recorder import replay_frames

        return replay_frames(cam.replay)
    from pipeline.sources.genicam import GenICamCamera

    return GenICamCamera(cam.genicam, cam.fps, on_reconnect).frames()


def open_ledger(cfg: LineConfig, cam: CameraConfig, metrics):
    """The camera's ledger (write-ahead record of sent frames), or None when the line runs without one."""
    if not cfg.ledger.enabled:
        return None
    from pipeline.ledger import Ledger
    from pipeline.line_keys import LineKeys
    from pipeline.redis_conn import connect

    # short timeouts: a Redis that hangs must not hold the camera longer than a few frame periods
    client = connect(cfg.redis, timeout_s=0.25, connect_timeout_s=0.25)
    keys = LineKeys(cfg.redis.stream)
    return Ledger(client, keys, cam.name, cfg.redis.maxlen, cfg.ledger.buffer_max, metrics)


def wait_for_tick0(cfg: LineConfig, clock, ready, stop: StopFlag) -> LineConfig:
    """On a carousel line: say ready, wait for the supervisor's tick 0, return the config that carries it."""
    if cfg.carousel is None or clock is None:
        return cfg
    ready.set()
    while clock.value == 0 and not stop.set:
        time.sleep(0.01)
    return cfg.model_copy(update={"carousel": cfg.carousel.model_copy(update={"t0_ns": clock.value})})


def camera_main(cfg_json: str, index: int, record_dir: str | None = None, clock=None, ready=None) -> None:
    from pipeline.metrics import CameraMetrics
    from pipeline.recorder import Recorder
    from pipeline.wire import encode

    cfg = LineConfig.model_validate_json(cfg_json)
    cam = cfg.cameras[index]
    setup_logging(f"camera[{cam.name}]")
    stop = StopFlag()
    metrics = CameraMetrics()
    start_metrics(cfg, metrics.registry, cfg.metrics.camera_port, index)
    epoch = time.time_ns()
    ledger = open_ledger(cfg, cam, metrics)
    seq = ledger.resume(cfg.ledger.resume_timeout_s) if ledger else 0  # frame ids only ever increase
    log.info("epoch %d, frame ids from %d", epoch, seq)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, cfg.worker.hwm)
    sock.setsockopt(zmq.SNDTIMEO, 2000)
    sock.setsockopt(zmq.LINGER, 10_000)
    if cfg.worker.curve is not None:
        from pipeline.curve import secure_client

        secure_client(sock, cfg.worker.curve)
    for endpoint in cfg.worker.endpoints:
        sock.connect(endpoint)
    cfg = wait_for_tick0(cfg, clock, ready, stop)
    recorder = Recorder(Path(record_dir)) if record_dir else None
    timing = open(Path(cfg.timing_dir) / f"camera-{cam.name}.jsonl", "a") if cfg.timing_dir else None  # noqa: SIM115
    sent = 0
    source = camera_source(cam, index, lambda: metrics.reconnects.labels(cam.name).inc(), cfg.carousel)
    ticks = None
    if cfg.carousel is not None:
        from pipeline.units import DeviceSequence, Timeline

        ticks = DeviceSequence(Timeline.of(cfg.carousel, cfg.carousel.t0_ns))
    try:
        for sf in source:
            if stop.set:
                break
            if ticks is not None:
                sf.trigger = ticks.frame_tick(sf.trigger, sf.device_seq, sf.t_acq_ns)
            header, seq = stamp_header(sf, cam, seq, epoch, cfg.carousel), seq + 1
            if ledger:
                ledger.record(header)  # before the send: a frame this process dies with is still known
            t_sent = time.time_ns()  # handed to ZeroMQ now; the worker may read it before send returns
            try:
                sock.send_multipart(encode(header, sf.pixels), copy=False)
            except zmq.Again:
                metrics.send_failed.labels(cam.name).inc()
                log.error("no worker took frame %d within 2 s: the reconciler answers it lost", header.frame_id)
                continue
            if timing:
                row = {"camera": header.camera, "frame_id": header.frame_id, "t_acq": header.t_acq_ns, "t_sent": t_sent}
                timing.write(json.dumps(row, separators=(",", ":")) + "\n")
            if recorder:
                recorder.write(header, sf.pixels)
            metrics.frames_sent.labels(cam.name).inc()
            sent += 1
            if cam.max_frames and sent >= cam.max_frames:
                break
    finally:
        if hasattr(source, "close"):
            source.close()
        if recorder:
            recorder.close()
        if timing:
            timing.close()
        if ledger:
            ledger.drain(5.0)
        sock.close()  # LINGER: queued frames still go out
        ctx.term()
        log.info("stopped after %d frames", sent)


def worker_main(cfg_json: str, index: int, ready=None, heartbeat=None, capacity=None) -> None:
    """``capacity``: a shared double; on a carousel that checks its rate, the first start writes its engine's
    measured frames/s there before it says ready (engines/capacity.py)."""
    from engines.select import DEFAULT_CACHE, open_engine
    from model.checkpoint import read_meta
    from pipeline.archive import RejectArchive
    from pipeline.line_keys import LineKeys
    from pipeline.metrics import WorkerMetrics
    from pipeline.publisher import ThreadedPublisher, VerdictPublisher
    from pipeline.redis_conn import connect
    from pipeline.worker import Worker

    cfg = LineConfig.model_validate_json(cfg_json)
    w = cfg.worker
    setup_logging(f"worker[{index}]")
    stop = StopFlag()
    metrics = WorkerMetrics()
    start_metrics(cfg, metrics.registry, cfg.metrics.worker_port, index)
    meta = read_meta(Path(w.checkpoint))
    engine = open_engine(
        w.engine,
        Path(w.checkpoint),
        Path(cfg.cache_dir or DEFAULT_CACHE),
        w.max_batch,
        w.threads,
        Path(w.plan) if w.plan else None,
        log=log.info,
    )
    log.info("engine %s, model %s, threshold %.4f", engine.describe(), meta.id, meta.threshold)
    from engines.capacity import warm_up

    log.info("every batch size up to %d warmed in %.2f s", w.max_batch, warm_up(engine, w.max_batch))
    r = cfg.redis
    inner = VerdictPublisher(
        r.url, r.stream, r.maxlen, r.buffer_max, metrics, claim_ttl_s=cfg.ledger.claim_ttl_s, client=connect(r)
    )
    archive = None
    if w.archive.enabled:
        archive = RejectArchive(Path(w.archive.dir), int(w.archive.max_mb * 2**20), on_skip=metrics.archive_skipped.inc)
    publisher = ThreadedPublisher(inner)
    worker = Worker(cfg, engine, meta.id, meta.threshold, publisher, metrics, archive, meta.roi_prior())
    # read on the publisher thread every second for the line page
    publisher.status = (LineKeys(r.stream).worker_status(index), lambda: worker_status(worker, engine, inner, index))
    if cfg.timing_dir:
        from pipeline.worker import TimingLog

        worker.timing = TimingLog(str(Path(cfg.timing_dir) / f"worker-{index}.jsonl"))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, w.hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, int(w.max_message_mb * 2**20))  # bigger: dropped by libzmq, never allocated
    auth = None
    if w.curve is not None:
        from pipeline.curve import secure_server

        auth = secure_server(ctx, sock, w.curve)
    sock.bind(w.endpoints[index])
    if capacity is not None and capacity.value == 0.0 and cfg.carousel and cfg.carousel.check_capacity:
        from engines.capacity import measure_frames_per_s

        capacity.value = measure_frames_per_s(engine, w.max_batch)
        log.info("engine measured %.1f frames/s at batch %d", capacity.value, min(w.max_batch, engine.max_batch))
    if ready is not None:
        ready.set()
    run_worker(worker, sock, stop, heartbeat=heartbeat)
    sock.close(linger=0)
    if auth is not None:
        auth.stop()
    ctx.term()
    if archive:
        archive.close()
    if worker.timing:
        worker.timing.close()
    log.info("stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(worker.counts.items())) or "no frames")


def worker_status(worker, engine, publisher, index: int) -> dict[str, str]:
    """What the line page shows of a worker (docs/design.md 3.10)."""
    return {
        "index": str(index),
        "pid": str(os.getpid()),
        "engine": engine.describe(),
        "model": worker.model_id,
        "threshold": f"{worker.default_threshold:.6f}",
        "queue": str(len(worker.batcher)),
        "max_queue": str(worker.batcher.max_queue),
        "redis_buffer": str(len(publisher.buffer)),
        "t_ns": str(time.time_ns()),
    }


def _drain_socket(worker, sock: zmq.Socket, limit: int = 1000) -> int:
    n = 0
    while n < limit:
        try:
            parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        except zmq.Again:
            break
        worker.on_message(parts, time.time_ns())
        n += 1
    return n


def run_worker(
    worker,
    sock: zmq.Socket,
    stop: StopFlag,
    quiet_ms: float = 300.0,
    flush_timeout_s: float = 15.0,
    heartbeat=None,
) -> None:
    """Receive, batch, infer, publish until stopped; then drain: take what is still arriving until the socket
    is quiet for ``quiet_ms``, judge everything queued, write every verdict. ``heartbeat`` (a shared double) gets
    the monotonic time of every loop: the supervisor restarts a worker whose heartbeat stops."""
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.set:
        if heartbeat is not None:
            heartbeat.value = time.monotonic()
        worker.metrics.heartbeat.set(time.time())
        wait = worker.batcher.wait_ns(time.time_ns())
        timeout_ms = 100 if wait is None else wait / 1e6
        if poller.poll(timeout_ms):
            _drain_socket(worker, sock)
        worker.step(time.time_ns())
        worker.publisher.flush()
    log.info("draining")
    quiet_since = time.monotonic()
    while (time.monotonic() - quiet_since) * 1e3 < quiet_ms:
        if poller.poll(50) and _drain_socket(worker, sock):
            quiet_since = time.monotonic()
        worker.step(time.time_ns())
    while len(worker.batcher):
        worker.step(time.time_ns(), force=True)
    worker.publisher.drain(flush_timeout_s)
