"""The chaos run (``run_line.py chaos``, and the CI test): the line under a schedule of failures, then an audit.

Failures: ``kill_worker`` / ``kill_camera`` (SIGKILL), ``hang_worker`` (SIGSTOP: the heartbeat stops, the
supervisor must kill and restart it), ``redis_stop`` / ``redis_start``. Afterwards every frame in the ledger must
have exactly one verdict, no ``pass`` without an inference, and the supervisor must not have crashed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from model.errors import InputError
from pipeline.audit import audit, promise_kept
from pipeline.config import LineConfig
from pipeline.redis_local import LocalRedis
from pipeline.supervisor import Supervisor

ACTIONS = ("kill_worker", "kill_camera", "hang_worker", "redis_stop", "redis_start")


@dataclass(frozen=True)
class Event:
    at_s: float
    action: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise InputError(f"chaos event {self.action!r}: expected one of {', '.join(ACTIONS)}")


DEFAULT_SCHEDULE = (
    Event(3.0, "kill_worker"),
    Event(8.0, "kill_camera"),
    Event(11.0, "redis_stop"),
    Event(13.0, "redis_start"),
    Event(17.0, "hang_worker"),
)


def _act(sup: Supervisor, server: LocalRedis, action: str) -> None:
    if action in ("kill_worker", "hang_worker"):
        os.kill(sup.workers[0].proc.pid, signal.SIGKILL if action == "kill_worker" else signal.SIGSTOP)
    elif action == "kill_camera":
        os.kill(sup.cameras[0].proc.pid, signal.SIGKILL)
    elif action == "redis_stop":
        server.stop()
    else:
        server.start()


def run_chaos(
    cfg: LineConfig,
    server: LocalRedis,
    schedule: tuple[Event, ...] = DEFAULT_SCHEDULE,
    duration_s: float = 26.0,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the line for ``duration_s`` while ``schedule`` happens, stop it (drain), audit the stream."""
    sup = Supervisor(cfg)
    done: list[tuple[str, int]] = []  # (action, wall ns)
    supervisor_errors: list[str] = []
    sup.start()
    t0 = time.monotonic()
    todo = sorted(schedule, key=lambda e: e.at_s)
    try:
        while time.monotonic() - t0 < duration_s:
            while todo and todo[0].at_s <= time.monotonic() - t0:
                ev = todo.pop(0)
                log(f"{time.monotonic() - t0:5.1f} s: {ev.action}")
                _act(sup, server, ev.action)
                done.append((ev.action, time.time_ns()))
            try:
                sup.poll()
            except Exception as exc:  # the one thing that must never happen: counted, reported
                supervisor_errors.append(repr(exc))
            time.sleep(0.1)
    finally:
        if server.proc is None:
            server.start()
        sup.stop()
    report = audit(redis.Redis.from_url(server.url), cfg.redis.stream)
    report["events"] = [a for a, _ in done]
    report["restarts"] = {m.name: m.restarts for m in sup.managed}
    report["hang_kills"] = {m.name: m.hangs for m in sup.workers}
    report["supervisor_errors"] = supervisor_errors
    report["lost_after_worker_death_s"] = _lost_delays(server.url, cfg.redis.stream, done)
    report["promise_kept"] = promise_kept(report) and not supervisor_errors
    return report


def _lost_delays(url: str, stream: str, done: list[tuple[str, int]]) -> dict[str, list[float]]:
    """Seconds from each worker kill/hang to the first and last ``lost`` verdict written after it (before the next
    event): how long the line took to answer the frames the dead worker held."""
    rows = redis.Redis.from_url(url).xrange(stream)
    lost_t = sorted(int(f[b"t_verdict_ns"]) for _, f in rows if f[b"reason"] == b"lost")
    out = {}
    for i, (action, t) in enumerate(done):
        if action not in ("kill_worker", "hang_worker"):
            continue
        end = done[i + 1][1] if i + 1 < len(done) else float("inf")
        after = [(x - t) / 1e9 for x in lost_t if t <= x < end]
        out[f"{i}:{action}"] = [round(after[0], 2), round(after[-1], 2), len(after)] if after else []
    return out


def chaos_on_local_redis(checkpoint: str, fps: float, seconds: float) -> dict:
    """``run_line.py chaos``: two simulated cameras and one worker on a durable redis-server of the run's own
    (the schedule stops and restarts it), the default schedule, then the audit's report."""
    import tempfile
    from pathlib import Path

    from engines.select import DEFAULT_CACHE, ensure_onnx
    from pipeline.config import CameraConfig, LedgerConfig, MetricsConfig, PageConfig, RedisConfig, WorkerConfig
    from pipeline.demo import local_endpoint

    ensure_onnx(Path(checkpoint), DEFAULT_CACHE, 4, log=print)
    server = LocalRedis(persist=True).start()
    cfg = LineConfig(
        cameras=[CameraConfig(name=f"cam{i}", fps=fps, synthetic={"seed": i}) for i in range(2)],
        worker=WorkerConfig(
            endpoints=[local_endpoint("chaos")],
            checkpoint=checkpoint,
            deadline_ms=1000,
            hang_s=5,
            archive={"dir": tempfile.mkdtemp(prefix="grdnet-chaos-rejects-")},
        ),
        redis=RedisConfig(url=server.url, stream="grdnet:chaos"),
        ledger=LedgerConfig(grace_s=3.0),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
    )
    try:
        return run_chaos(cfg, server, duration_s=seconds)
    finally:
        server.stop()
