"""Prometheus metrics of the line (prometheus-client), one HTTP endpoint per process, loopback by default."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.frames_in = Counter("grdnet_worker_frames_in", "frames received", ["camera"], registry=r)
        self.verdicts = Counter("grdnet_verdicts", "verdicts written or buffered", ["camera", "reason"], registry=r)
        self.bad_frames = Counter("grdnet_bad_frames", "malformed messages by kind", ["kind"], registry=r)
        self.engine_errors = Counter("grdnet_engine_errors", "batches whose inference raised", registry=r)
        self.batch_size = Histogram(
            "grdnet_batch_size", "frames per inference batch", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32), registry=r
        )
        self.stage = Histogram(
            "grdnet_stage_seconds", "latency per stage", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue = Gauge("grdnet_worker_queue", "frames waiting for a batch", registry=r)
        self.redis_buffer = Gauge("grdnet_redis_buffer_fill", "verdicts waiting for Redis", registry=r)
        self.redis_dropped = Counter("grdnet_redis_dropped", "verdicts lost: buffer full", registry=r)
        self.redis_up = Gauge("grdnet_redis_up", "1 when the last write reached Redis", registry=r)
        self.archive_skipped = Counter("grdnet_archive_skipped", "reject overlays not written", registry=r)
        self.verdicts_suppressed = Counter(
            "grdnet_verdicts_suppressed", "verdicts not written: the frame already had one", registry=r
        )
        self.unknown_camera = Counter("grdnet_unknown_camera_frames", "frames from cameras not configured", registry=r)
        self.heartbeat = Gauge("grdnet_worker_heartbeat_seconds", "last loop iteration (unix time)", registry=r)


class CameraMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.frames_sent = Counter("grdnet_camera_frames_sent", "frames sent to the workers", ["camera"], registry=r)
        self.send_failed = Counter("grdnet_camera_send_failed", "frames no worker took in time", ["camera"], registry=r)
        self.reconnects = Counter("grdnet_camera_reconnects", "camera reconnect attempts", ["camera"], registry=r)
        self.ledger_buffer = Gauge("grdnet_ledger_buffer_fill", "sent frames waiting for Redis", ["camera"], registry=r)
        self.ledger_dropped = Counter(
            "grdnet_ledger_dropped", "ledger entries lost: buffer full while Redis was away", ["camera"], registry=r
        )


class ReconcilerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.seen = Counter("grdnet_ledger_frames", "sent frames read from the ledger", ["camera"], registry=r)
        self.lost = Counter(
            "grdnet_lost_frames", "sent frames with no verdict: lost rejects written", ["camera"], registry=r
        )
        self.pending = Gauge("grdnet_reconciler_pending", "sent frames not yet past deadline + grace", registry=r)
        self.lag = Gauge("grdnet_reconciler_lag_seconds", "age of the oldest pending frame", registry=r)
        self.redis_up = Gauge("grdnet_reconciler_redis_up", "1 when the last round trip reached Redis", registry=r)


def serve(registry: CollectorRegistry, host: str, port: int) -> int:
    """Start the /metrics endpoint; returns the bound port (``port`` 0 picks a free one)."""
    server, _ = start_http_server(port, addr=host, registry=registry)
    return server.server_port
