"""The line end to end with real processes: supervisor, camera processes, ZeroMQ, worker, redis-server."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import yaml

from pipeline.config import CameraConfig, LineConfig, MetricsConfig, PageConfig, RedisConfig, ReplaySource, WorkerConfig
from pipeline.demo import run_line_until
from pipeline.verdicts import VERDICT_FIELDS
from tests.conftest import assert_one_line_error, run_cli

CONTRACT = set(VERDICT_FIELDS)


def _cfg(tmp_path, url, stream, checkpoint, cache, cameras, **worker):
    return LineConfig(
        cameras=cameras,
        worker=WorkerConfig(
            endpoints=[f"ipc://{tmp_path}/w0.sock"],
            checkpoint=str(checkpoint),
            engine="onnxruntime",
            threads=1,
            archive={"dir": str(tmp_path / "rejects")},
            **worker,
        ),
        redis=RedisConfig(url=url, stream=stream),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
        cache_dir=str(cache),
    )


def _rows(url, stream):
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in redis.Redis.from_url(url).xrange(stream)]


def test_n_frames_in_exactly_n_verdicts_out(tmp_path, redis_server, tiny_checkpoint, engine_cache):
    cams = [CameraConfig(name=f"cam{i}", fps=20, max_frames=6, synthetic={"seed": i, "size": 96}) for i in range(2)]
    cfg = _cfg(tmp_path, redis_server.url, "e2e:n", tiny_checkpoint, engine_cache, cams)
    summary = run_line_until(cfg, 12, timeout_s=120)
    rows = _rows(redis_server.url, "e2e:n")
    assert len(rows) == 12 and summary["verdicts"] == 12 and summary["duplicates"] == 0
    assert len({(r["camera"], r["frame_id"]) for r in rows}) == 12
    assert all(set(r) >= CONTRACT for r in rows)
    for cam in ("cam0", "cam1"):
        ids = sorted(int(r["frame_id"]) for r in rows if r["camera"] == cam)
        assert ids == list(range(6))


def test_replay_gives_the_live_verdicts(tmp_path, redis_server, tiny_checkpoint, engine_cache):
    cams = [CameraConfig(name="cam0", fps=20, max_frames=8, synthetic={"seed": 5, "size": 96, "defect_rate": 0.5})]
    live_cfg = _cfg(tmp_path, redis_server.url, "e2e:live", tiny_checkpoint, engine_cache, cams)
    run_line_until(live_cfg, 8, timeout_s=120, record_dir=str(tmp_path / "rec"))
    recorded = tmp_path / "rec" / "cam0"
    assert len((recorded / "stream.jsonl").read_text().splitlines()) == 8
    replay_cams = [CameraConfig(name="replay", source="replay", replay=ReplaySource(path=str(recorded), rate="max"))]
    replay_cfg = _cfg(
        tmp_path, redis_server.url, "e2e:replay", tiny_checkpoint, engine_cache, replay_cams, deadline_ms=3.6e6
    )
    run_line_until(replay_cfg, 8, timeout_s=120)
    live = {(r["camera"], r["frame_id"]): r for r in _rows(redis_server.url, "e2e:live")}
    again = {(r["camera"], r["frame_id"]): r for r in _rows(redis_server.url, "e2e:replay")}
    assert set(live) == set(again) and len(live) == 8
    for key, r in live.items():
        assert (r["reason"], r["slot"]) == (again[key]["reason"], again[key]["slot"])
        assert abs(float(r["score"]) - float(again[key]["score"])) < 1e-5


def test_sigterm_drains_without_losing_a_verdict(tmp_path, redis_server, tiny_checkpoint, engine_cache):
    cfg = _cfg(
        tmp_path,
        redis_server.url,
        "e2e:term",
        tiny_checkpoint,
        engine_cache,
        [
            CameraConfig(name="cam0", fps=15, synthetic={"size": 96}),
            CameraConfig(name="cam1", fps=15, synthetic={"size": 96, "seed": 1}),
        ],
    )
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    proc = subprocess.Popen(
        [sys.executable, "run_line.py", "run", "--config", str(path)], stderr=subprocess.PIPE, text=True
    )
    client = redis.Redis.from_url(redis_server.url)
    end = time.monotonic() + 120
    while client.xlen("e2e:term") < 10 and time.monotonic() < end:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    sent = sum(int(n) for n in re.findall(r"stopped after (\d+) frames", err))
    rows = _rows(redis_server.url, "e2e:term")
    assert sent >= 10 and len(rows) == sent, f"{sent} frames sent, {len(rows)} verdicts"
    assert len({(r["camera"], r["frame_id"]) for r in rows}) == sent


def test_genicam_camera_through_the_line(tmp_path, redis_server, tiny_checkpoint, engine_cache):
    cams = [CameraConfig(name="viky", source="genicam", fps=20, max_frames=6, genicam={"serial_number": "2"})]
    cfg = _cfg(tmp_path, redis_server.url, "e2e:gc", tiny_checkpoint, engine_cache, cams)
    run_line_until(cfg, 6, timeout_s=120)
    rows = _rows(redis_server.url, "e2e:gc")
    assert sorted(int(r["frame_id"]) for r in rows) == list(range(6)) and all(r["camera"] == "viky" for r in rows)


def test_bad_line_config_names_the_key(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text("cameras:\n  - name: a\n    fps: -3\n")
    assert_one_line_error(run_cli("run", "--config", str(path)), "cameras.0.fps")


def test_the_example_line_config_is_valid():
    from pipeline.config import load_line_config

    cfg = load_line_config(Path("config/line.yaml"))
    assert {c.source for c in cfg.cameras} == {"genicam", "synthetic"}
    assert os.path.basename(cfg.worker.checkpoint) == "grdnet-vials-cpu.safetensors"


def test_the_default_command_runs_the_demo_on_the_bundled_model(tmp_path, redis_server, monkeypatch, bundled_cache):
    monkeypatch.setenv("GRDNET_CACHE", str(bundled_cache))
    out = tmp_path / "summary.json"
    r = run_cli(
        "--frames", "6", "--fps", "1.5", "--cameras", "2", "--redis-url", redis_server.url, "--summary-json", str(out)
    )
    assert r.returncode == 0, r.stderr[-2000:]
    import json

    s = json.loads(out.read_text())
    assert s["verdicts"] == 6 and s["by_camera"] == {"cam0": 3, "cam1": 3} and s["duplicates"] == 0
    assert "summary" in r.stdout
    u = s["units"]  # the demo's cameras are carousel stations: it decides units too
    assert u["units"] >= 1 and u["pass"] + u["eject"] == u["units"] and "units (carousel) decided" in r.stdout


def test_a_demo_carousel_faster_than_the_engine_is_refused_at_start_in_one_line(
    redis_server, monkeypatch, bundled_cache
):
    monkeypatch.setenv("GRDNET_CACHE", str(bundled_cache))
    r = run_cli("--frames", "6", "--fps", "60", "--cameras", "2", "--redis-url", redis_server.url)
    assert r.returncode == 2, r.stdout[-2000:]
    last = r.stderr.strip().splitlines()[-1]  # after the workers' start-up log lines
    assert last.startswith("error: carousel: 3600 units/min x 2 stations needs 120.0 frames/s"), r.stderr[-2000:]
    assert "slow the carousel to" in last


def test_record_then_replay_cli(tmp_path, redis_server, monkeypatch, bundled_cache):
    import json

    monkeypatch.setenv("GRDNET_CACHE", str(bundled_cache))
    rec = tmp_path / "rec"
    r = run_cli("record", "--out", str(rec), "--frames", "4", "--cameras", "2", "--fps", "20")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((rec / "stream.jsonl").read_text().splitlines()) == 4
    out = tmp_path / "replay.json"
    r = run_cli("replay", str(rec), "--rate", "max", "--redis-url", redis_server.url, "--summary-json", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(out.read_text())
    assert s["verdicts"] == 4 and s["by_camera"] == {"cam0": 2, "cam1": 2}


def test_two_workers_share_a_camera(tmp_path, redis_server, tiny_checkpoint, engine_cache):
    cams = [CameraConfig(name="cam0", fps=20, max_frames=10, synthetic={"size": 96})]
    cfg = _cfg(tmp_path, redis_server.url, "e2e:two", tiny_checkpoint, engine_cache, cams)
    cfg.worker.endpoints = [f"ipc://{tmp_path}/w0.sock", f"ipc://{tmp_path}/w1.sock"]
    cfg.timing_dir = str(tmp_path / "timing")
    Path(cfg.timing_dir).mkdir()
    run_line_until(cfg, 10, timeout_s=120)
    rows = _rows(redis_server.url, "e2e:two")
    assert sorted(int(r["frame_id"]) for r in rows) == list(range(10))
    per_worker = [len(p.read_text().splitlines()) for p in sorted(Path(cfg.timing_dir).glob("worker-*.jsonl"))]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker) and sum(per_worker) == 10


def test_a_crashed_camera_is_restarted(tmp_path, redis_server, tiny_checkpoint, engine_cache, caplog):
    import logging

    from pipeline.supervisor import Supervisor

    cams = [CameraConfig(name="cam0", fps=20, synthetic={"size": 96})]
    cfg = _cfg(tmp_path, redis_server.url, "e2e:crash", tiny_checkpoint, engine_cache, cams)
    sup = Supervisor(cfg)
    sup.start()
    try:
        first = sup.cameras[0].proc
        time.sleep(1.0)
        os.kill(first.pid, signal.SIGKILL)
        end = time.monotonic() + 20
        with caplog.at_level(logging.WARNING, logger="grdnet.supervisor"):
            while time.monotonic() < end and sup.cameras[0].restarts == 0:
                sup.poll()
                time.sleep(0.1)
        assert sup.cameras[0].restarts == 1 and sup.cameras[0].proc is not first and sup.cameras[0].proc.is_alive()
        assert "crashed (exit -9); restarting" in caplog.text
    finally:
        sup.stop()


def test_redis_stop_and_restart_during_a_run_loses_no_verdict(tmp_path, tiny_checkpoint, engine_cache):
    from pipeline.redis_local import LocalRedis
    from pipeline.supervisor import Supervisor

    server = LocalRedis(persist=True).start()
    cams = [CameraConfig(name="cam0", fps=20, max_frames=60, synthetic={"size": 96})]
    cfg = _cfg(tmp_path, server.url, "e2e:outage", tiny_checkpoint, engine_cache, cams)
    sup = Supervisor(cfg)
    try:
        sup.start()
        time.sleep(1.0)
        server.stop()  # about 20 frames arrive while Redis is away
        time.sleep(1.0)
        server.start()
        end = time.monotonic() + 60
        while not sup.cameras_finished() and time.monotonic() < end:
            sup.poll()
            time.sleep(0.1)
        sup.stop()
        rows = _rows(server.url, "e2e:outage")
        ids = [int(r["frame_id"]) for r in rows]
        assert sorted(set(ids)) == list(range(60)), "every frame has its verdict after the outage"
        assert ids == sorted(ids), "in order"
    finally:
        sup.stop()
        server.stop()
