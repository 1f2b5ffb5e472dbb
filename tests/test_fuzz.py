"""Hostile input on the frame endpoint of a real worker process: thousands of malformed messages of every kind,
interleaved with valid frames. The worker keeps its PID, answers every valid frame exactly once, keeps memory
and metric series bounded, and writes nothing outside its archive."""

import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import redis
import zmq

from pipeline.config import CameraConfig, LineConfig, MetricsConfig, PageConfig, RedisConfig, WorkerConfig
from pipeline.metrics import WorkerMetrics
from pipeline.wire import FrameHeader, encode
from pipeline.worker_process import worker_main

EPOCH = 42
# Malformed messages claim an identity no valid frame of this test uses: a verdict is written once per
# (camera, epoch, frame_id), so a malformed message carrying a real frame's identity would become that frame's
# (fail-safe) bad_frame reject if it won the race, and "every valid frame answered" could not be asserted.
FUZZ_FRAME_ID = 999_999


def _header(**over) -> bytes:
    h = {
        "v": 1,
        "camera": "cam0",
        "epoch": EPOCH,
        "frame_id": FUZZ_FRAME_ID,
        "slot": 1,
        "t_acq_ns": 1,
        "shape": [8, 8],
        "dtype": "uint8",
    }
    h.update(over)
    return json.dumps(h).encode()


def fuzz_messages(rng: np.random.Generator, n: int, outside: Path):
    """``n`` malformed messages cycling through every kind of fault (each a list of parts)."""
    kinds = [
        lambda i: [_header()],  # one part
        lambda i: [_header(), bytes(64), b"extra"],  # three parts
        lambda i: [b"\xff\xfe\x00" + rng.bytes(20), bytes(64)],  # not UTF-8
        lambda i: [b"[1, 2, 3]", bytes(64)],  # a JSON array
        lambda i: [b"42", bytes(64)],
        lambda i: [b"[" * 1500, bytes(64)],  # deep nesting
        lambda i: [_header(camera=7), bytes(64)],  # wrong types
        lambda i: [_header(frame_id="7"), bytes(64)],
        lambda i: [_header(shape="8x8"), bytes(64)],
        lambda i: [_header(epoch=-1), bytes(64)],
        lambda i: [_header(frame_id=2**70), bytes(64)],  # huge ints
        lambda i: [_header(slot=-5), bytes(64)],
        lambda i: [_header(shape=[2**40, 2**40, 3]), bytes(64)],  # huge shape: refused before any allocation
        lambda i: [_header(shape=[0, 8]), b""],
        lambda i: [_header(shape=[-8, 8]), bytes(64)],
        lambda i: [_header(shape=[8, 8, 7]), bytes(448)],
        lambda i: [_header(), bytes(63)],  # size mismatch
        lambda i: [_header(dtype="float32"), bytes(256)],
        lambda i: [_header(v=2), bytes(64)],
        lambda i: [_header(camera=f"../{outside.name}/x{i}"), bytes(64)],  # path-like names
        lambda i: [_header(camera=str(outside / f"abs{i}")), bytes(64)],
        lambda i: [_header(camera="c" * 100_000), bytes(64)],  # very long name (and header)
        lambda i: [_header(camera=f"unknown{i}"), bytes(64)],  # valid names never configured
        lambda i: [rng.bytes(int(rng.integers(1, 300))), rng.bytes(int(rng.integers(0, 300)))],  # random bytes
    ]
    for i in range(n):
        yield kinds[i % len(kinds)](i)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _valid(frame_id: int) -> list:
    px = np.random.default_rng(frame_id).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    return encode(FrameHeader("cam0", frame_id, frame_id % 24, time.time_ns(), (96, 96, 3), epoch=EPOCH), px)


def test_fuzzed_endpoint_keeps_the_worker_up_and_every_valid_frame_answered_once(
    tmp_path, redis_server, tiny_checkpoint, engine_cache
):
    endpoint = f"ipc://{tmp_path}/fuzz.sock"
    archive, outside = tmp_path / "rejects", tmp_path / "outside"
    outside.mkdir()
    cfg = LineConfig(
        cameras=[CameraConfig(name="cam0", threshold=-1.0)],  # every valid frame is an anomaly: overlays written
        worker=WorkerConfig(
            endpoints=[endpoint],
            checkpoint=str(tiny_checkpoint),
            engine="onnxruntime",
            threads=1,
            deadline_ms=60_000,
            max_queue=10_000,
            max_message_mb=1,
            archive={"dir": str(archive)},
        ),
        redis=RedisConfig(url=redis_server.url, stream="fuzz:v"),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
        cache_dir=str(engine_cache),
    )
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=worker_main, args=(cfg.model_dump_json(), 0, ready), daemon=True)
    proc.start()
    assert ready.wait(120), "worker did not start"
    zctx = zmq.Context()
    zctx.setsockopt(zmq.LINGER, 0)  # a test never waits on unsent messages at the end
    push = zctx.socket(zmq.PUSH)
    push.connect(endpoint)
    rng = np.random.default_rng(0)
    valid_ids = []
    try:
        for i in range(40):  # warm up: the first batches allocate what the worker keeps for good
            push.send_multipart(_valid(i))
            valid_ids.append(i)
        for parts in fuzz_messages(rng, 500, outside):
            push.send_multipart(parts)
        time.sleep(3.0)
        rss_before = _rss_kb(proc.pid)
        n_fuzz = 10_000
        for k, parts in enumerate(fuzz_messages(rng, n_fuzz, outside)):
            push.send_multipart(parts)
            if k % 100 == 0:
                fid = 1000 + k // 100
                push.send_multipart(_valid(fid))
                valid_ids.append(fid)
        big = zctx.socket(zmq.PUSH)  # over max_message_mb: libzmq drops it (and that peer) unread
        big.connect(endpoint)
        big.send_multipart([_header(shape=[1024, 1024, 3]), bytes(3 * 2**20)])
        big.close(linger=500)
        client = redis.Redis.from_url(redis_server.url)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            rows = [{k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange("fuzz:v")]
            answered = [
                r for r in rows if r["camera"] == "cam0" and r["epoch"] == str(EPOCH) and r["reason"] != "bad_frame"
            ]
            if len(answered) >= len(valid_ids):
                break
            time.sleep(0.5)
        time.sleep(1.0)
        rss_after = _rss_kb(proc.pid)
        assert proc.is_alive(), "the worker kept its PID through the flood"
        rows = [{k.decode(): v.decode() for k, v in f.items()} for _, f in client.xrange("fuzz:v")]
        valid = [r for r in rows if r["camera"] == "cam0" and r["epoch"] == str(EPOCH) and r["reason"] != "bad_frame"]
        assert sorted(int(r["frame_id"]) for r in valid) == sorted(valid_ids), "every valid frame exactly once"
        assert all(r["reason"] == "anomaly" for r in valid)
        unknown = [r for r in rows if r["reason"] == "unknown_camera"]
        sent_unknown = sum(
            1
            for n in (500, n_fuzz)
            for parts in fuzz_messages(np.random.default_rng(1), n, outside)
            if b'"camera": "unknown' in parts[0]
        )
        assert len(unknown) == sent_unknown > 400, "unknown cameras are answered, each once"
        growth_mb = (rss_after - rss_before) / 1024
        print(
            f"worker RSS {rss_before / 1024:.1f} MB before, {rss_after / 1024:.1f} MB after {n_fuzz} fuzzed "
            f"messages (+{growth_mb:.1f} MB); {len(rows)} stream entries"
        )
        assert growth_mb < 10, f"memory grew {growth_mb:.1f} MB over {n_fuzz} hostile messages"
        assert list(outside.iterdir()) == [], "nothing written outside the archive"
        assert all(p.parent == archive for p in archive.rglob("*")), "the archive holds only its own files"
    finally:
        push.close(linger=0)
        zctx.term()
        proc.terminate()
        proc.join(30)


def test_unknown_cameras_grow_no_metric_series():
    """What the worker keeps per camera is fixed at start: 2,000 unknown names add no label values."""
    from pipeline.worker import Worker

    class NullPublisher:
        metrics = WorkerMetrics()

        def publish(self, verdicts, on_written=None):
            return True

    class Engine:
        max_batch, image_size, channels = 4, 32, 3

    cfg = LineConfig(cameras=[CameraConfig(name="cam0")])
    w = Worker(cfg, Engine(), "m", 0.5, NullPublisher())

    def series() -> int:
        return sum(len(m.samples) for m in w.metrics.registry.collect())

    w.on_message([_header(camera="unknownX"), bytes(64)], time.time_ns())
    before = series()
    for i in range(2000):
        w.on_message([_header(camera=f"unknown{i}"), bytes(64)], time.time_ns())
    assert series() == before and len(w.preps) == 1
    assert w.metrics.unknown_camera._value.get() == 2001
