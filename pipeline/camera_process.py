"""The camera process: one per camera (source -> ledger -> PUSH). It takes the line config as JSON (validated
again inside), stops cleanly on SIGTERM/SIGINT and exits 0 when its source is finished; the supervisor restarts
only a process that crashed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import zmq

from pipeline.config import CameraConfig, LineConfig
from pipeline.process_setup import StopFlag, setup_logging, start_metrics, wait_for_tick0

log = logging.getLogger("grdnet")


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
