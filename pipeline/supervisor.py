"""The supervisor: starts the worker processes, then the cameras; restarts a crashed process with backoff
(logged); on stop, drains: cameras stop first, then the workers finish what is in flight and flush."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass, field

from pipeline.config import LineConfig
from pipeline.processes import camera_main, worker_main

log = logging.getLogger("grdnet.supervisor")


@dataclass
class Managed:
    name: str
    target: object
    args: tuple
    proc: mp.process.BaseProcess | None = None
    restarts: int = 0
    next_start: float = 0.0
    finished: bool = False
    backoff: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0, 16.0, 30.0])


class Supervisor:
    def __init__(self, cfg: LineConfig, record_dir: str | None = None, ready_timeout_s: float = 300.0) -> None:
        self.cfg = cfg
        self.ctx = mp.get_context("spawn")
        cfg_json = cfg.model_dump_json()
        self.ready = [self.ctx.Event() for _ in cfg.worker.endpoints]
        self.workers = [
            Managed(f"worker[{i}]", worker_main, (cfg_json, i, self.ready[i])) for i in range(len(cfg.worker.endpoints))
        ]
        self.cameras = [
            Managed(
                f"camera[{c.name}]",
                camera_main,
                (cfg_json, i, os.path.join(record_dir, c.name) if record_dir else None),
            )
            for i, c in enumerate(cfg.cameras)
        ]
        self.ready_timeout_s = ready_timeout_s
        self.stopping = False

    def _start(self, m: Managed) -> None:
        m.proc = self.ctx.Process(target=m.target, args=m.args, name=m.name, daemon=False)
        m.proc.start()

    def start(self) -> None:
        for m in self.workers:
            self._start(m)
        end = time.monotonic() + self.ready_timeout_s
        for m, ev in zip(self.workers, self.ready, strict=True):
            while not ev.wait(0.2):
                if not m.proc.is_alive():
                    raise RuntimeError(f"{m.name} exited with code {m.proc.exitcode} before it was ready")
                if time.monotonic() > end:
                    raise RuntimeError(f"{m.name} not ready after {self.ready_timeout_s:.0f} s")
        for m in self.cameras:
            self._start(m)

    def poll(self) -> None:
        """Restart what crashed (non-zero exit), with backoff; a camera that exits 0 has finished."""
        now = time.monotonic()
        for m in (*self.workers, *self.cameras):
            if m.finished or m.proc is None or m.proc.is_alive() or self.stopping:
                continue
            code = m.proc.exitcode
            if code == 0:
                m.finished = True
                log.info("%s finished", m.name)
                continue
            if m.next_start == 0.0:
                delay = m.backoff[min(m.restarts, len(m.backoff) - 1)]
                m.next_start = now + delay
                log.error("%s crashed (exit %s); restarting in %.0f s", m.name, code, delay)
            elif now >= m.next_start:
                m.restarts += 1
                m.next_start = 0.0
                log.warning("%s restarting (restart %d)", m.name, m.restarts)
                self._start(m)

    def cameras_finished(self) -> bool:
        return all(m.finished for m in self.cameras)

    def alive(self) -> bool:
        return any(m.proc is not None and m.proc.is_alive() for m in (*self.workers, *self.cameras))

    def stop(self, timeout_s: float = 60.0) -> None:
        """Drain: stop the cameras, let them flush, then stop the workers (they judge and write what is left)."""
        self.stopping = True
        for group in (self.cameras, self.workers):
            for m in group:
                if m.proc is not None and m.proc.is_alive():
                    os.kill(m.proc.pid, signal.SIGTERM)
            for m in group:
                if m.proc is None:
                    continue
                m.proc.join(timeout_s)
                if m.proc.is_alive():
                    log.error("%s did not stop in %.0f s: killed", m.name, timeout_s)
                    m.proc.kill()
                    m.proc.join()

    def run_forever(self) -> int:
        """``run_line.py run``: supervise until SIGINT/SIGTERM (or every camera finished), then drain."""
        stop = {"now": False}

        def handle(signum, frame) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        self.start()
        log.info("line running: %d camera(s), %d worker(s)", len(self.cameras), len(self.workers))
        while not stop["now"] and not (self.cameras_finished() and self.cameras):
            self.poll()
            time.sleep(0.2)
        log.info("stopping: draining cameras and workers")
        self.stop()
        return 0
