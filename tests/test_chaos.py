"""The chaos run in CI: two synthetic cameras, the worker killed and hung, a camera killed, Redis stopped and
restarted; afterwards every sent frame has exactly one verdict and the supervisor never failed."""

import json

from pipeline.chaos import run_chaos
from pipeline.config import CameraConfig, LedgerConfig, LineConfig, MetricsConfig, PageConfig, RedisConfig, WorkerConfig
from pipeline.redis_local import LocalRedis


def test_chaos_every_sent_frame_ends_with_exactly_one_verdict(tmp_path, tiny_checkpoint, engine_cache):
    server = LocalRedis(persist=True).start()  # what was written survives the Redis restart
    cfg = LineConfig(
        cameras=[CameraConfig(name=f"cam{i}", fps=3, synthetic={"seed": i, "size": 96}) for i in range(2)],
        worker=WorkerConfig(
            endpoints=[f"ipc://{tmp_path}/w0.sock"],
            checkpoint=str(tiny_checkpoint),
            engine="onnxruntime",
            threads=1,
            deadline_ms=1000,
            hang_s=3,
            archive={"dir": str(tmp_path / "rejects")},
        ),
        redis=RedisConfig(url=server.url, stream="chaos:v"),
        ledger=LedgerConfig(grace_s=2.0),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
        cache_dir=str(engine_cache),
    )
    try:
        report = run_chaos(cfg, server, duration_s=30.0)  # room for > 80 frames however slow the restarts
    finally:
        server.stop()
    print(json.dumps(report, indent=1, default=str))
    assert report["events"] == ["kill_worker", "kill_camera", "redis_stop", "redis_start", "hang_worker"]
    assert report["sent"] > 80 and report["verdicts"] == report["sent"], "verdicts == frames sent (the ledger)"
    assert not report["missing"] and not report["duplicates"] and not report["unledgered"]
    assert not report["pass_without_inference"] and not report["failed_with_a_score"]
    assert report["supervisor_errors"] == []
    assert report["restarts"]["worker[0]"] >= 2 and report["hang_kills"]["worker[0]"] == 1
    assert report["restarts"]["camera[cam0]"] == 1 and report["epochs_by_camera"]["cam0"] == 2
    assert report["restarts"]["reconciler"] == 0 and report["restarts"]["camera[cam1]"] == 0
    assert not report["frame_ids_reused_after_restart"], "a restarted camera continues its frame ids"
    assert report["promise_kept"]
