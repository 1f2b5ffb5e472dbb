"""The worker: validate every message, batch dynamically, infer, and answer every frame with one verdict.

``Worker`` holds the decisions and is driven by ``on_message`` / ``step`` with explicit clocks, so it is
tested without sockets; ``run_worker`` is the thin ZeroMQ loop around it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np

from engines.base import Engine
from pipeline.archive import RejectArchive
from pipeline.batcher import DynamicBatcher
from pipeline.config import LineConfig
from pipeline.metrics import WorkerMetrics
from pipeline.prep import CameraPrep
from pipeline.publisher import VerdictPublisher
from pipeline.rate_log import RateLimitedLog
from pipeline.recorder import known_cameras
from pipeline.verdicts import Verdict, failed, judge
from pipeline.wire import BadFrame, decode

log = logging.getLogger("grdnet.worker")


class TimingLog:
    """Per-frame stage times as JSONL (acquired, received, batch start, engine done, written), for benchmarks."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1 << 16)  # noqa: SIM115 - closed in close()

    def write(self, jobs: list[Job], t_batch: int, t_done: int, t_written: int) -> None:
        for j in jobs:
            row = {
                "camera": j.camera,
                "epoch": j.epoch,
                "frame_id": j.frame_id,
                "t_acq": j.t_acq_ns,
                "t_recv": j.t_recv_ns,
                "t_batch": t_batch,
                "t_engine": t_done,
                "t_written": t_written,
                "batch": len(jobs),
            }
            self.file.write(json.dumps(row, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.file.close()


@dataclass
class Job:
    camera: str
    frame_id: int
    slot: int
    t_acq_ns: int
    t_recv_ns: int
    image: np.ndarray  # at the model's size
    roi: np.ndarray
    threshold: float
    epoch: int = 0
    trigger: int = -1


class Worker:
    def __init__(
        self,
        cfg: LineConfig,
        engine: Engine,
        model_id: str,
        threshold: float,
        publisher: VerdictPublisher,
        metrics: WorkerMetrics | None = None,
        archive: RejectArchive | None = None,
        roi_prior: np.ndarray | None = None,
    ) -> None:
        """``roi_prior``: the checkpoint's (bool, at the model's size), the ROI of a camera without a mask."""
        w = cfg.worker
        self.engine, self.model_id, self.default_threshold = engine, model_id, threshold
        self.publisher, self.archive = publisher, archive
        self.metrics = metrics or publisher.metrics
        self.batcher: DynamicBatcher[Job] = DynamicBatcher(
            min(w.max_batch, engine.max_batch), int(w.max_wait_ms * 1e6), max(w.max_queue, w.max_batch)
        )
        self.deadline_ns = int(w.deadline_ms * 1e6)
        self.cameras = known_cameras(cfg)  # fixed at start: no message can grow what the worker keeps per camera
        self.preps = {
            name: CameraPrep(c, engine.image_size, engine.channels, roi_prior) for name, c in self.cameras.items()
        }
        self.warn = RateLimitedLog(log)
        self.counts: dict[str, int] = {}
        self.timing: TimingLog | None = None  # set by the process when cfg.timing_dir is given

    def _threshold(self, camera: str) -> float:
        cam = self.cameras.get(camera)
        return cam.threshold if cam and cam.threshold is not None else self.default_threshold

    def _emit(self, verdicts: list[Verdict], on_written=None) -> None:
        for v in verdicts:
            self.metrics.verdicts.labels(v.camera if v.camera in self.cameras else "_unknown", v.reason).inc()
            self.counts[v.reason] = self.counts.get(v.reason, 0) + 1
        if verdicts:
            self.publisher.publish(verdicts, on_written)

    def _fail(self, reason: str, jobs: list[Job], now_ns: int) -> list[Verdict]:
        return [
            failed(
                reason=reason,
                camera=j.camera,
                frame_id=j.frame_id,
                slot=j.slot,
                t_acq_ns=j.t_acq_ns,
                now_ns=now_ns,
                threshold=j.threshold,
                model=self.model_id,
                epoch=j.epoch,
                trigger=j.trigger,
            )
            for j in jobs
        ]

    def on_message(self, parts: list, now_ns: int) -> None:
        """Validate, prepare and queue one message; a bad one is counted, logged and answered when it can be."""
        try:
            frame = decode(parts)
            h = frame.header
            if h.camera not in self.cameras:
                self._unknown_camera(h.camera, h.frame_id, h.slot, h.epoch, h.t_acq_ns, now_ns)
                return
            job = Job(
                h.camera, h.frame_id, h.slot, h.t_acq_ns, now_ns, np.empty(0), np.empty(0), self._threshold(h.camera)
            )
            job.epoch, job.trigger = h.epoch, (h.trigger if h.trigger is not None else -1)
            try:
                prep = self.preps[job.camera]
                job.image, job.roi = prep(frame.pixels), prep.roi
            except ValueError as exc:
                raise BadFrame("pixels", str(exc), job.camera, job.slot, job.frame_id, job.epoch) from None
        except BadFrame as bad:
            self._bad_frame(bad, now_ns)
            return
        self.metrics.frames_in.labels(job.camera).inc()
        self.metrics.stage.labels("transport").observe(max(0, now_ns - job.t_acq_ns) / 1e9)
        evicted = self.batcher.add(job, job.t_acq_ns, now_ns)
        if evicted:
            self.warn("overload", f"queue full ({self.batcher.max_queue}): {len(evicted)} oldest frames rejected")
            self._emit(self._fail("overload", evicted, now_ns))
        self.metrics.queue.set(len(self.batcher))

    def _bad_frame(self, bad: BadFrame, now_ns: int) -> None:
        """Counted by kind, logged with rate limiting, answered with a ``bad_frame`` reject when the header named a
        camera and slot; written once per identity only for a configured camera that named its frame id."""
        self.metrics.bad_frames.labels(bad.kind).inc()
        self.warn(f"bad:{bad.kind}", f"bad frame ({bad}); camera={bad.camera} slot={bad.slot}")
        if bad.camera is None or bad.slot is None:
            return
        known = bad.camera in self.cameras and bad.frame_id is not None
        fid = bad.frame_id if bad.frame_id is not None else -1
        thr = self._threshold(bad.camera)
        v = failed(
            reason="bad_frame",
            camera=bad.camera,
            frame_id=fid,
            slot=bad.slot,
            t_acq_ns=0,
            now_ns=now_ns,
            threshold=thr,
            model=self.model_id,
            epoch=bad.epoch,
            claim=known,
        )
        self._emit([v])

    def _unknown_camera(self, camera: str, frame_id: int, slot: int, epoch: int, t_acq_ns: int, now_ns: int) -> None:
        """A frame from a camera the line does not know: a counted reject, and nothing kept for it."""
        self.metrics.unknown_camera.inc()
        self.warn("unknown_camera", f"frame from camera {camera!r}, which is not configured: unknown_camera reject")
        thr, model = self.default_threshold, self.model_id
        self._emit(
            [
                failed(
                    reason="unknown_camera",
                    camera=camera,
                    frame_id=frame_id,
                    slot=slot,
                    t_acq_ns=t_acq_ns,
                    now_ns=now_ns,
                    threshold=thr,
                    model=model,
                    epoch=epoch,
                    claim=False,
                )
            ]
        )

    def step(self, now_ns: int, force: bool = False) -> int:
        """Run one batch when one is due; returns the number of frames judged."""
        batch, late = self.batcher.take(now_ns, self.deadline_ns, force)
        verdicts = self._fail("late", late, now_ns) if late else []
        if late:
            self.warn("late", f"{len(late)} frames older than the {self.deadline_ns / 1e6:.0f} ms deadline rejected")
        on_written = None
        if batch:
            judged = self._infer(batch, now_ns)
            verdicts += judged
            if judged[-1].reason != "engine_error":  # a failed batch is not a timed inference
                t_done = judged[-1].t_verdict_ns

                def on_written(t_written: int, batch=batch, t_batch=now_ns, t_done=t_done) -> None:
                    self.metrics.stage.labels("write").observe((t_written - t_done) / 1e9)
                    if self.timing:
                        self.timing.write(batch, t_batch, t_done, t_written)

        self._emit(verdicts, on_written)
        self.metrics.queue.set(len(self.batcher))
        return len(batch) + len(late)

    def _infer(self, batch: list[Job], t_start_ns: int) -> list[Verdict]:
        for j in batch:
            self.metrics.stage.labels("queue").observe((t_start_ns - j.t_recv_ns) / 1e9)
        self.metrics.batch_size.observe(len(batch))
        try:
            # the batch is assembled in the engine's own input memory (pinned on a GPU): no stacked copy
            frames, roi = self.engine.staging(len(batch))
            for i, j in enumerate(batch):
                frames[i], roi[i] = j.image, j.roi
            scores, _ = self.engine.infer_staged(len(batch), want_maps=False)
            reasons = [judge(float(scores[i]), j.threshold) for i, j in enumerate(batch)]
            rejects = [i for i, r in enumerate(reasons) if r == "anomaly"] if self.archive is not None else []
            maps = dict(zip(rejects, self.engine.maps_of(rejects), strict=True)) if rejects else {}
        except Exception as exc:  # any engine failure: reject the batch, keep the line running
            self.metrics.engine_errors.inc()
            self.warn("engine_error", f"engine failed on a batch of {len(batch)}: {exc!r}")
            return self._fail("engine_error", batch, time.time_ns())
        done = time.time_ns()
        self.metrics.stage.labels("engine").observe((done - t_start_ns) / 1e9)
        out = []
        for i, j in enumerate(batch):
            reason, path = reasons[i], None
            if i in maps:  # a reject to archive: its map was copied back, the others' never were
                p = self.archive.path_for(j.camera, j.epoch, j.frame_id)
                path = str(p) if p is not None and self.archive.submit(p, j.image, maps[i]) else None
            out.append(
                Verdict(
                    camera=j.camera,
                    frame_id=j.frame_id,
                    slot=j.slot,
                    t_acq_ns=j.t_acq_ns,
                    t_verdict_ns=done,
                    score=float(scores[i]),
                    threshold=j.threshold,
                    reason=reason,
                    model=self.model_id,
                    map_path=path,
                    epoch=j.epoch,
                    trigger=j.trigger,
                )
            )
            self.metrics.stage.labels("end_to_end").observe((done - j.t_acq_ns) / 1e9)
        return out
