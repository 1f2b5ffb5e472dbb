"""Prometheus: the worker's endpoint serves counters that move as frames are judged."""

import time
import urllib.request

import numpy as np

from engines.ort_engine import OnnxRuntimeEngine
from pipeline.config import CameraConfig, LineConfig, RedisConfig
from pipeline.metrics import WorkerMetrics, serve
from pipeline.publisher import VerdictPublisher
from pipeline.wire import FrameHeader, encode
from pipeline.worker import Worker


def _scrape(port):
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _value(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_worker_metrics_move(tiny_onnx, redis_server):
    metrics = WorkerMetrics()
    port = serve(metrics.registry, "127.0.0.1", 0)
    cfg = LineConfig(cameras=[CameraConfig(name="cam0")], redis=RedisConfig(url=redis_server.url, stream="m:1"))
    pub = VerdictPublisher(redis_server.url, "m:1", 1000, 100, metrics)
    w = Worker(cfg, OnnxRuntimeEngine(tiny_onnx, threads=1), "m", 0.5, pub, metrics)
    before = _scrape(port)
    assert _value(before, 'grdnet_worker_frames_in_total{camera="cam0"}') is None
    now = time.time_ns()
    for i in range(3):
        px = np.zeros((64, 64, 3), np.uint8)
        w.on_message(encode(FrameHeader("cam0", i, 0, now, (64, 64, 3)), px), now)
    w.on_message([b"junk"], now)
    w.step(time.time_ns(), force=True)
    after = _scrape(port)
    assert _value(after, 'grdnet_worker_frames_in_total{camera="cam0"}') == 3
    assert _value(after, 'grdnet_bad_frames_total{kind="parts"}') == 1
    assert _value(after, "grdnet_batch_size_count") == 1
    assert _value(after, "grdnet_redis_buffer_fill") == 0
