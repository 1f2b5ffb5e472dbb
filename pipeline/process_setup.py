"""What every line process sets up the same way: its log format, a stop flag for SIGTERM/SIGINT, its /metrics
endpoint, and on a carousel line the wait for the supervisor's tick 0.

The camera, worker, aggregator and reconciler processes each wire themselves from these in their own module
(camera_process.py, worker_process.py, ...), so a process module holds one process's wiring and its cleanup."""

from __future__ import annotations

import logging
import signal
import sys
import time

from pipeline.config import LineConfig

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


def wait_for_tick0(cfg: LineConfig, clock, ready, stop: StopFlag) -> LineConfig:
    """On a carousel line: say ready, wait for the supervisor's tick 0, return the config that carries it."""
    if cfg.carousel is None or clock is None:
        return cfg
    ready.set()
    while clock.value == 0 and not stop.set:
        time.sleep(0.01)
    return cfg.model_copy(update={"carousel": cfg.carousel.model_copy(update={"t0_ns": clock.value})})
