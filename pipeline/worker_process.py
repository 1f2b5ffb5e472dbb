"""The worker process: one per worker endpoint (PULL -> batcher -> engine -> Redis). It takes the line config
as JSON (validated again inside), stops cleanly on SIGTERM/SIGINT after judging and writing everything it
holds, and closes its sockets, archive and timing log in ``finally`` even when it fails."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import zmq

from pipeline.config import LineConfig
from pipeline.process_setup import StopFlag, setup_logging, start_metrics

log = logging.getLogger("grdnet")


def worker_main(cfg_json: str, index: int, ready=None, heartbeat=None, capacity=None) -> None:
    """``capacity``: a shared double; on a carousel that checks its rate, the first start writes its engine's
    measured frames/s there before it says ready (engines/capacity.py)."""
    cfg = LineConfig.model_validate_json(cfg_json)
    setup_logging(f"worker[{index}]")
    stop = StopFlag()
    worker, engine = build_worker(cfg, index)
    ctx = zmq.Context()
    sock, auth = None, None
    try:
        sock, auth = open_socket(ctx, cfg, index)
        if capacity is not None and capacity.value == 0.0 and cfg.carousel and cfg.carousel.check_capacity:
            from engines.capacity import measure_frames_per_s

            batch = min(cfg.worker.max_batch, engine.max_batch)
            capacity.value = measure_frames_per_s(engine, cfg.worker.max_batch)
            log.info("engine measured %.1f frames/s at batch %d", capacity.value, batch)
        if ready is not None:
            ready.set()
        run_worker(worker, sock, stop, heartbeat=heartbeat)
        log.info("stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(worker.counts.items())) or "no frames")
    finally:
        if sock is not None:
            sock.close(linger=0)
        if auth is not None:
            auth.stop()
        ctx.term()
        if worker.archive:
            worker.archive.close()
        if worker.timing:
            worker.timing.close()


def build_worker(cfg: LineConfig, index: int):
    """The engine, publisher, archive and ``Worker`` of worker ``index``, warmed for every batch size; returns
    (worker, engine)."""
    from engines.capacity import warm_up
    from engines.select import DEFAULT_CACHE, open_engine
    from model.checkpoint import read_meta
    from pipeline.archive import RejectArchive
    from pipeline.line_keys import LineKeys
    from pipeline.metrics import WorkerMetrics
    from pipeline.publisher import ThreadedPublisher, VerdictPublisher
    from pipeline.redis_conn import connect
    from pipeline.worker import TimingLog, Worker

    w = cfg.worker
    metrics = WorkerMetrics()
    start_metrics(cfg, metrics.registry, cfg.metrics.worker_port, index)
    meta = read_meta(Path(w.checkpoint))
    cache = Path(cfg.cache_dir or DEFAULT_CACHE)
    plan = Path(w.plan) if w.plan else None
    engine = open_engine(w.engine, Path(w.checkpoint), cache, w.max_batch, w.threads, plan, log=log.info)
    log.info("engine %s, model %s, threshold %.4f", engine.describe(), meta.id, meta.threshold)
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
        worker.timing = TimingLog(str(Path(cfg.timing_dir) / f"worker-{index}.jsonl"))
    return worker, engine


def open_socket(ctx: zmq.Context, cfg: LineConfig, index: int):
    """The worker's PULL socket bound to its endpoint (with CURVE when configured); returns (socket, authenticator
    or None)."""
    w = cfg.worker
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, w.hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, int(w.max_message_mb * 2**20))  # bigger: dropped by libzmq, never allocated
    auth = None
    try:
        if w.curve is not None:
            from pipeline.curve import secure_server

            auth = secure_server(ctx, sock, w.curve)
        sock.bind(w.endpoints[index])
    except BaseException:
        sock.close(linger=0)
        if auth is not None:
            auth.stop()
        raise
    return sock, auth


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
