"""The supervisor: starts the reconciler, the workers, then the cameras; restarts a crashed process with backoff
(logged) and kills a worker whose heartbeat stopped (it is then restarted the same way); on stop, drains:
cameras stop first, then the workers finish what is in flight and flush, then the reconciler answers whatever
sent frame still has no verdict."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass, field

from model.errors import InputError, SetupError
from pipeline.aggregator import aggregator_main
from pipeline.camera_process import camera_main
from pipeline.config import LineConfig
from pipeline.page import page_main, page_url
from pipeline.process_setup import StopFlag
from pipeline.reconciler import reconciler_main
from pipeline.worker_process import worker_main

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
    heartbeat: object | None = None  # a shared double the process sets every loop (workers)
    hangs: int = 0
    backoff: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0, 16.0, 30.0])


class Supervisor:
    def __init__(
        self, cfg: LineConfig, record_dir: str | None = None, ready_timeout_s: float = 300.0, role: str = "all"
    ) -> None:
        """``role``: ``all`` (one host), ``workers`` (workers and the reconciler: the GPU host) or ``cameras``
        (cameras and, on a carousel, the aggregator: the camera host) of a line split over hosts."""
        if role not in ("all", "workers", "cameras"):
            raise InputError(f"role {role!r}: expected all, workers or cameras")
        self.cfg = cfg
        self.ctx = mp.get_context("spawn")
        cfg_json = cfg.model_dump_json()
        self.ready = [self.ctx.Event() for _ in cfg.worker.endpoints]
        self.workers = []
        self.capacity = [self.ctx.Value("d", 0.0, lock=False) for _ in cfg.worker.endpoints]  # frames/s measured
        for i in range(len(cfg.worker.endpoints)):
            beat = self.ctx.Value("d", 0.0, lock=False)
            self.workers.append(
                Managed(
                    f"worker[{i}]", worker_main, (cfg_json, i, self.ready[i], beat, self.capacity[i]), heartbeat=beat
                )
            )
        self.reconciler = [Managed("reconciler", reconciler_main, (cfg_json,))] if cfg.ledger.enabled else []
        # the carousel's tick 0, shared with the cameras and the aggregator (restarted ones too)
        self.clock = self.ctx.Value("q", 0, lock=False)
        self.clock_ready = [self.ctx.Event() for _ in range(len(cfg.cameras) + 1)]
        self.aggregator = (
            [Managed("aggregator", aggregator_main, (cfg_json, self.clock, self.clock_ready[-1]))]
            if cfg.carousel
            else []
        )
        self.cameras = [
            Managed(
                f"camera[{c.name}]",
                camera_main,
                (
                    cfg_json,
                    i,
                    os.path.join(record_dir, c.name) if record_dir else None,
                    self.clock,
                    self.clock_ready[i],
                ),
            )
            for i, c in enumerate(cfg.cameras)
        ]
        # the live page: with the workers (the reject archive it shows lives on their host)
        self.page = [Managed("page", page_main, (cfg_json,))] if cfg.page.enabled and role != "cameras" else []
        self.ready_timeout_s = ready_timeout_s
        self.stopping = False
        if role == "workers":
            self.cameras, self.aggregator = [], []
        elif role == "cameras":
            self.workers, self.reconciler, self.ready = [], [], []

    def _start(self, m: Managed) -> None:
        if m.heartbeat is not None:
            m.heartbeat.value = 0.0  # a new process: no heartbeat until its loop runs
        m.proc = self.ctx.Process(target=m.target, args=m.args, name=m.name, daemon=False)
        m.proc.start()

    def start(self) -> None:
        from pipeline.redis_conn import check_credentials, mask_url

        if not check_credentials(self.cfg.redis):  # refused credentials raise: one line, nothing started
            log.warning(
                "Redis at %s not reachable yet: verdicts and ledger wait in memory", mask_url(self.cfg.redis.url)
            )
        try:
            self._start_processes()
        except Exception:
            self.stop(timeout_s=10.0)  # nothing started is left running behind a refusal
            raise

    def _start_processes(self) -> None:
        for m in (*self.page, *self.reconciler, *self.workers):
            self._start(m)
        end = time.monotonic() + self.ready_timeout_s
        for m, ev in zip(self.workers, self.ready, strict=True):
            while not ev.wait(0.2):
                if not m.proc.is_alive():
                    raise SetupError(f"{m.name} exited with code {m.proc.exitcode} before it was ready")
                if time.monotonic() > end:
                    raise SetupError(f"{m.name} not ready after {self.ready_timeout_s:.0f} s")
        self._check_capacity()
        for m in (*self.aggregator, *self.cameras):
            self._start(m)
        self._start_carousel_clock()
        self._wait_for_page()

    def _wait_for_page(self, timeout_s: float = 20.0) -> None:
        """The address the line prints answers when it is printed; a page that does not come up is logged, not
        fatal (the line judges frames without it)."""
        if not self.page:
            return
        import socket

        p = self.cfg.page
        host = "127.0.0.1" if p.host in ("0.0.0.0", "") else p.host
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and self.page[0].proc.is_alive():
            try:
                with socket.create_connection((host, p.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        log.warning("line page not answering at %s after %.0f s", self.page_address(), timeout_s)

    def _check_capacity(self) -> None:
        """Refuse a carousel the workers cannot keep up with (CapacityError, one line; the caller stops what
        started). A camera host has no workers to time: the worker host checks."""
        c = self.cfg.carousel
        if c is None or not c.check_capacity or not self.workers:
            return
        from engines.capacity import check_carousel_rate

        line = check_carousel_rate(c.units_per_minute, len(c.stations), [v.value for v in self.capacity], c.max_load)
        log.info(line)

    def _start_carousel_clock(self) -> None:
        """Tick 0 of the encoder, ``start_lead_s`` after every camera and the aggregator is ready (process
        start takes seconds on a loaded machine: a clock started before them would eject the first units)."""
        c = self.cfg.carousel
        if c is None or not self.cameras:
            return
        end = time.monotonic() + self.ready_timeout_s
        for m, ev in zip((*self.cameras, *self.aggregator), self.clock_ready, strict=True):
            while not ev.wait(0.2):
                if not m.proc.is_alive() or time.monotonic() > end:
                    raise SetupError(f"{m.name} not ready for the carousel clock (exit {m.proc.exitcode})")
        t0 = time.time_ns() + int(c.start_lead_s * 1e9)
        self.clock.value = t0
        self.cfg = self.cfg.model_copy(update={"carousel": c.model_copy(update={"t0_ns": t0})})
        log.info("carousel: tick 0 at %d, %g units/min", t0, c.units_per_minute)

    @property
    def managed(self) -> tuple[Managed, ...]:
        return (*self.page, *self.reconciler, *self.workers, *self.aggregator, *self.cameras)

    def _kill_hung(self, now: float) -> None:
        """A worker whose loop has not run for ``worker.hang_s`` holds frames it will never answer: kill it; the
        restart below brings a fresh one and the reconciler answers what it held."""
        for m in self.workers:
            beat = m.heartbeat.value if m.heartbeat is not None else 0.0
            if m.proc is not None and m.proc.is_alive() and beat > 0 and now - beat > self.cfg.worker.hang_s:
                m.hangs += 1
                log.error("%s made no progress for %.0f s: killed (hang %d)", m.name, now - beat, m.hangs)
                m.heartbeat.value = 0.0
                m.proc.kill()
                m.proc.join(5)

    def poll(self) -> None:
        """Restart what crashed (non-zero exit), with backoff; a camera that exits 0 has finished."""
        now = time.monotonic()
        if not self.stopping:
            self._kill_hung(now)
        for m in self.managed:
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

    def page_address(self) -> str | None:
        return page_url(self.cfg) if self.page else None

    def cameras_finished(self) -> bool:
        return all(m.finished for m in self.cameras)

    def alive(self) -> bool:
        return any(m.proc is not None and m.proc.is_alive() for m in (*self.workers, *self.cameras))

    def stop(self, timeout_s: float = 60.0) -> None:
        """Drain: stop the cameras, let them flush, then stop the workers (they judge and write what is left),
        then the reconciler (it answers ``lost`` for any sent frame still without a verdict)."""
        self.stopping = True
        for group in (self.cameras, self.workers, self.reconciler, self.aggregator, self.page):
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
        stop = StopFlag()
        self.start()
        log.info("line running: %d camera(s), %d worker(s)", len(self.cameras), len(self.workers))
        if self.page:
            log.info("line page: %s", self.page_address())
        while not stop.set and not (self.cameras_finished() and self.cameras):
            self.poll()
            time.sleep(0.2)
        log.info("stopping: draining cameras and workers")
        self.stop()
        return 0
