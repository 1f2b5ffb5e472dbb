"""The worker's decisions with a real ONNX Runtime engine and a real redis-server, driven without sockets."""

import json
import time

import numpy as np
import pytest
import redis

from engines.ort_engine import OnnxRuntimeEngine
from pipeline.config import CameraConfig, LineConfig, RedisConfig, WorkerConfig
from pipeline.publisher import VerdictPublisher
from pipeline.verdicts import VERDICT_FIELDS
from pipeline.wire import FrameHeader, encode
from pipeline.worker import Worker
from tests.conftest import make_verdict

MS = 1_000_000


def _worker(tiny_onnx, url, stream, engine=None, **worker_over):
    cfg = LineConfig(
        cameras=[
            CameraConfig(name="cam0"),
            CameraConfig(name="cam1", threshold=-1.0),
            CameraConfig(name="cam2", crop=(0, 0, 200, 200)),
        ],
        worker=WorkerConfig(**{"max_batch": 4, "max_wait_ms": 5, "deadline_ms": 250, **worker_over}),
        redis=RedisConfig(url=url, stream=stream),
    )
    engine = engine or OnnxRuntimeEngine(tiny_onnx, threads=1)
    pub = VerdictPublisher(url, stream, 10_000, 1000)
    return Worker(cfg, engine, "model-x", 0.5, pub)


def _msg(camera, frame_id, t_acq_ns, shape=(96, 96, 3), epoch=0):
    px = np.random.default_rng(frame_id).integers(0, 255, shape, dtype=np.uint8)
    return encode(FrameHeader(camera, frame_id, frame_id % 24, t_acq_ns, shape, epoch=epoch), px)


def _entries(url, stream):
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis.Redis.from_url(url).xrange(stream)]


def test_every_frame_gets_one_verdict_with_the_contract_fields(tiny_onnx, redis_server):
    w = _worker(tiny_onnx, redis_server.url, "t:all")
    now = time.time_ns()
    for i in range(10):
        w.on_message(_msg("cam0" if i % 2 else "cam1", i, now), now)
    while len(w.batcher):
        w.step(time.time_ns(), force=True)
    rows = _entries(redis_server.url, "t:all")
    assert len(rows) == 10 and len({(r["camera"], r["frame_id"]) for r in rows}) == 10
    for r in rows:
        assert set(r) >= set(VERDICT_FIELDS) and r["model"] == "model-x"
        assert r["reason"] in ("pass", "anomaly") and r["reject"] == ("1" if r["reason"] == "anomaly" else "0")
    cam1 = [r for r in rows if r["camera"] == "cam1"]
    assert all(r["reason"] == "anomaly" for r in cam1), "cam1's threshold of -1 rejects everything"


def test_malformed_burst_is_counted_and_answered_where_possible(tiny_onnx, redis_server):
    w = _worker(tiny_onnx, redis_server.url, "t:bad")
    now = time.time_ns()
    for i in range(50):
        w.on_message([b"garbage"], now)
        w.on_message([b'{"camera": "cam0", "slot": 5, "frame_id": %d}' % (100 + i), b"xx"], now)
    w.on_message([b'{"camera": "cam0", "slot": 5, "frame_id": 100}', b"xx"], now)  # the same frame again
    w.on_message(_msg("cam0", 1, now), now)
    w.step(time.time_ns(), force=True)
    w.publisher.flush(force=True)
    assert w.metrics.bad_frames.labels("parts")._value.get() == 50
    assert w.metrics.bad_frames.labels("field")._value.get() == 51
    rows = _entries(redis_server.url, "t:bad")
    bad = [r for r in rows if r["reason"] == "bad_frame"]
    assert len(bad) == 50 and all(r["slot"] == "5" and r["reject"] == "1" for r in bad)
    assert sorted(int(r["frame_id"]) for r in bad) == list(range(100, 150)), "one verdict per frame identity"
    assert w.metrics.verdicts_suppressed._value.get() == 1
    assert [r["reason"] for r in rows if r["reason"] != "bad_frame"] in (["pass"], ["anomaly"])


def test_engine_error_rejects_the_batch_and_the_worker_goes_on(tiny_onnx, redis_server, tmp_path):
    class FlakyEngine(OnnxRuntimeEngine):
        calls = 0

        def _run(self, frames, roi, want_maps):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("CUDA error: an illegal memory access")
            return super()._run(frames, roi, want_maps)

    w = _worker(tiny_onnx, redis_server.url, "t:err", engine=FlakyEngine(tiny_onnx, threads=1))
    from pipeline.worker import TimingLog

    w.timing = TimingLog(str(tmp_path / "worker-0.jsonl"))
    now = time.time_ns()
    for i in range(4):
        w.on_message(_msg("cam0", i, now), now)
    w.step(time.time_ns(), force=True)
    for i in range(4, 6):
        w.on_message(_msg("cam0", i, now), now)
    w.step(time.time_ns(), force=True)
    rows = _entries(redis_server.url, "t:err")
    assert [r["reason"] for r in rows[:4]] == ["engine_error"] * 4
    assert all(r["reason"] in ("pass", "anomaly") for r in rows[4:]) and len(rows) == 6
    assert w.metrics.engine_errors._value.get() == 1
    w.timing.close()
    timed = [json.loads(line)["frame_id"] for line in (tmp_path / "worker-0.jsonl").read_text().splitlines()]
    assert timed == [4, 5], "only inferred frames are timed"


def test_maps_are_fetched_only_for_rejects_and_are_those_frames_maps(tiny_onnx, redis_server, tmp_path):
    from pipeline.archive import RejectArchive

    class CountingEngine(OnnxRuntimeEngine):
        asked: list = []

        def maps_of(self, rows):
            self.asked.append(list(rows))
            return super().maps_of(rows)

    class KeptArchive(RejectArchive):
        kept: dict = {}

        def submit(self, path, frame, amap):
            self.kept[path.name] = (frame.copy(), amap.copy())
            return super().submit(path, frame, amap)

    engine = CountingEngine(tiny_onnx, threads=1)
    w = _worker(tiny_onnx, redis_server.url, "t:maps", engine=engine)
    w.archive = KeptArchive(tmp_path / "rejects", max_bytes=10**7)
    now = time.time_ns()
    cameras = ["cam0", "cam1", "cam0", "cam1"]  # cam1's threshold of -1 rejects; cam0's 0.5 passes the tiny model
    for i, cam in enumerate(cameras):
        w.on_message(_msg(cam, i, now), now)
    w.step(time.time_ns(), force=True)
    w.archive.close()
    rows = _entries(redis_server.url, "t:maps")
    rejected = [i for i, r in enumerate(rows) if r["reason"] == "anomaly"]
    assert {1, 3} <= set(rejected) and engine.asked == [rejected], "one fetch, of the rejected rows only"
    assert sorted(KeptArchive.kept) == sorted(f"{rows[i]['camera']}_0_{rows[i]['frame_id']}.png" for i in rejected)
    for frame, amap in KeptArchive.kept.values():  # each archived map is its own frame's map
        _, ref = OnnxRuntimeEngine(tiny_onnx, threads=1).infer(frame[None], w.preps["cam1"].roi[None])
        assert np.abs(amap - ref[0]).max() <= 1e-6


def test_frames_past_the_deadline_are_late_rejects_without_inference(tiny_onnx, redis_server):
    w = _worker(tiny_onnx, redis_server.url, "t:late", deadline_ms=50)
    now = time.time_ns()
    w.on_message(_msg("cam0", 0, now - 400 * MS), now)
    w.on_message(_msg("cam0", 1, now), now)
    w.step(now + 10 * MS, force=True)
    rows = _entries(redis_server.url, "t:late")
    assert [(r["frame_id"], r["reason"]) for r in rows][0] == ("0", "late")
    assert rows[1]["reason"] in ("pass", "anomaly") and len(rows) == 2


def test_overload_keeps_the_queue_bounded_and_rejects_the_oldest(tiny_onnx, redis_server):
    w = _worker(tiny_onnx, redis_server.url, "t:over", max_queue=8, max_batch=4)
    now = time.time_ns()
    for i in range(20):
        w.on_message(_msg("cam0", i, now), now)
    assert len(w.batcher) == 8
    while len(w.batcher):
        w.step(time.time_ns(), force=True)
    rows = _entries(redis_server.url, "t:over")
    over = [int(r["frame_id"]) for r in rows if r["reason"] == "overload"]
    assert over == list(range(12)) and len(rows) == 20


def test_bad_pixels_for_the_camera_are_bad_frames(tiny_onnx, redis_server):
    w = _worker(tiny_onnx, redis_server.url, "t:px")
    now = time.time_ns()
    w.on_message(_msg("cam2", 0, now, epoch=77), now)  # cam2 crops 200 px out of a 96 px frame
    rows = _entries(redis_server.url, "t:px")
    assert rows[0]["reason"] == "bad_frame" and w.metrics.bad_frames.labels("pixels")._value.get() == 1
    assert (rows[0]["camera"], rows[0]["epoch"], rows[0]["frame_id"]) == ("cam2", "77", "0"), "the frame's identity"


def test_redis_outage_loses_no_verdict_and_keeps_order(fresh_redis):
    pub = VerdictPublisher(fresh_redis.url, "t:outage", 10_000, 1000, retry_s=0.05)
    mk = lambda i: make_verdict("cam0", i, slot=i % 24)  # noqa: E731
    assert pub.publish([mk(i) for i in range(5)])
    fresh_redis.stop()
    for i in range(5, 25):
        assert not pub.publish([mk(i)])
        time.sleep(0.01)
    assert len(pub.buffer) == 20 and pub.metrics.redis_up._value.get() == 0
    assert pub.metrics.redis_buffer._value.get() == 20
    fresh_redis.start()
    assert pub.drain(timeout_s=10)
    ids = [int(f[b"frame_id"]) for _, f in redis.Redis.from_url(fresh_redis.url).xrange("t:outage")]
    # redis-server keeps nothing across the restart (no persistence): what it holds is what was buffered
    assert ids == list(range(5, 25))
    assert pub.metrics.redis_buffer._value.get() == 0 and pub.dropped == 0


def test_full_buffer_drops_the_oldest_counted(fresh_redis):
    pub = VerdictPublisher(fresh_redis.url, "t:full", 10_000, buffer_max=3, retry_s=60)
    fresh_redis.stop()
    pub.publish([make_verdict("c", i) for i in range(5)])
    assert [v.frame_id for v in pub.buffer] == [2, 3, 4] and pub.dropped == 2
    assert pub.metrics.redis_dropped._value.get() == 2
    fresh_redis.start()


@pytest.mark.parametrize("fmt,shape", [("Mono8", (4, 6)), ("RGBa8", (4, 6, 4)), ("BGR8", (4, 6, 3))])
def test_pixel_formats_convert_to_model_input(fmt, shape):
    from pipeline.sources.frames import to_model_pixels

    data = np.arange(np.prod(shape), dtype=np.uint8)
    out = to_model_pixels(data, fmt, 4, 6)
    assert out.shape[:2] == (4, 6) and out.flags.owndata or out.base is not data
    if fmt == "RGBa8":
        assert np.array_equal(out, data.reshape(shape)[..., :3])
    if fmt == "BGR8":
        assert np.array_equal(out, data.reshape(shape)[..., ::-1])


def test_bayer_rggb_red_scene_demosaics_to_red():
    from pipeline.sources.frames import to_model_pixels

    mosaic = np.zeros((8, 8), np.uint8)
    mosaic[0::2, 0::2] = 200  # RGGB: R at even rows and columns; a pure red scene
    rgb = to_model_pixels(mosaic.ravel(), "BayerRG8", 8, 8)
    centre = rgb[2:6, 2:6].reshape(-1, 3).mean(axis=0)
    assert centre[0] > 150 and centre[1] < 30 and centre[2] < 30


def test_threaded_publisher_keeps_order_and_reports_when_written(fresh_redis):
    from pipeline.publisher import ThreadedPublisher

    pub = ThreadedPublisher(VerdictPublisher(fresh_redis.url, "t:thr", 10_000, 1000, retry_s=0.05))
    written = []
    for i in range(30):
        pub.publish([make_verdict("cam0", i)], on_written=lambda t, i=i: written.append(i))
    fresh_redis.stop()  # an outage while the thread works: it buffers and retries on its own
    for i in range(30, 40):
        pub.publish([make_verdict("cam0", i)], on_written=lambda t, i=i: written.append(i))
    time.sleep(0.5)
    assert all(i < 30 for i in written), "nothing is reported written while Redis is away"
    fresh_redis.start()
    assert pub.drain(timeout_s=10)
    assert written == list(range(40)), "callbacks fire once, in order"
    ids = [int(f[b"frame_id"]) for _, f in redis.Redis.from_url(fresh_redis.url).xrange("t:thr")]
    assert ids == sorted(ids) and set(range(30, 40)) <= set(ids)


def test_reject_archive_stays_within_its_disk_bound(tmp_path):
    from pipeline.archive import RejectArchive

    archive = RejectArchive(tmp_path / "rejects", max_bytes=60_000)
    rng = np.random.default_rng(0)
    for i in range(20):  # noisy frames: each overlay PNG is tens of kB
        archive.submit(
            archive.path_for("cam0", 5, i),
            rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
            rng.random((64, 64)).astype(np.float32),
        )
    archive.close()  # writes everything queued, then stops
    files = sorted(p.name for p in (tmp_path / "rejects").glob("*.png"))
    total = sum(p.stat().st_size for p in (tmp_path / "rejects").glob("*.png"))
    assert total <= 60_000 and 0 < len(files) < 20
    assert "cam0_5_19.png" in files and "cam0_5_0.png" not in files, "the oldest go first"


@pytest.mark.parametrize("camera", ["../outside", "/abs/path", "a/b", "." * 3, "x" * 300, "cam:0", ""])
def test_archive_never_names_a_file_outside_its_folder(tmp_path, camera):
    from pipeline.archive import RejectArchive

    skipped = []
    archive = RejectArchive(tmp_path / "rejects", max_bytes=10**6, on_skip=lambda: skipped.append(1))
    assert archive.path_for(camera, 0, 1) is None and skipped == [1]
    archive.close()


def test_a_camera_without_a_mask_is_judged_inside_the_checkpoints_roi_prior(tmp_path):
    import cv2

    from pipeline.config import CameraConfig
    from pipeline.prep import CameraPrep

    prior = np.zeros((32, 32), bool)
    prior[8:24, 8:24] = True
    assert (CameraPrep(CameraConfig(name="a"), 32, 3, prior).roi == np.where(prior, 255, 0)).all()
    whole = CameraPrep(CameraConfig(name="a", roi_prior=False), 32, 3, prior)
    assert (whole.roi == 255).all(), "roi_prior: false inspects the whole frame"
    own = np.zeros((64, 64), np.uint8)
    own[:32] = 255
    cv2.imwrite(str(tmp_path / "m.png"), own)
    mine = CameraPrep(CameraConfig(name="a", roi_mask=str(tmp_path / "m.png")), 32, 3, prior)
    assert (mine.roi[:16] == 255).all() and (mine.roi[16:] == 0).all(), "a camera's own mask replaces the prior"
    assert (CameraPrep(CameraConfig(name="a"), 16, 3, prior).roi == 255).all(), "a prior of another size is ignored"
