"""The live line page: its figures and alarms from stream entries (pure), its routes, and the page itself in a real
headless Chromium while a real line runs and its redis-server is stopped."""

import time

import pytest
import redis
from starlette.testclient import TestClient

from pipeline.config import CameraConfig, LineConfig, MetricsConfig, PageConfig, RedisConfig, WorkerConfig
from pipeline.line_view import LineView
from pipeline.page import StreamFollower, build_app, port_for
from pipeline.supervisor import Supervisor

T0 = 1_800_000_000.0


def _verdict(camera, frame_id, t_s, reason="pass", latency_ms=50.0, map_path=None):
    f = {
        "camera": camera,
        "epoch": "1",
        "frame_id": str(frame_id),
        "slot": "0",
        "t_acq_ns": str(int((t_s - latency_ms / 1e3) * 1e9)),
        "t_verdict_ns": str(int(t_s * 1e9)),
        "score": "0.5",
        "threshold": "0.700000",
        "reject": "0" if reason == "pass" else "1",
        "reason": reason,
        "model": "m1",
    }
    if map_path:
        f["map"] = map_path
    return f


def _view(**page):
    return LineView(["cam0", "cam1"], 1, PageConfig(**page), started_s=T0)


def _kinds(snap, camera=None):
    return {a["kind"] for a in snap["alarms"] if camera is None or a.get("camera") == camera}


def test_rates_latency_and_windows():
    v = _view()
    for i in range(100):  # cam0: 100 frames over 50 s at 2/s, every 10th an anomaly, 40 ms latency
        t = T0 + i * 0.5
        v.add_sent({"camera": "cam0", "t_acq_ns": str(int(t * 1e9))})
        v.add_verdict(_verdict("cam0", i, t, "anomaly" if i % 10 == 0 else "pass", latency_ms=40.0))
    v.set_worker(0, {"engine": "onnxruntime", "queue": "1", "max_queue": "64"})
    s = v.snapshot(T0 + 50)
    cam0 = s["cameras"][0]
    assert cam0["frames_per_s"] == pytest.approx(2.0) and cam0["verdicts_per_s"] == pytest.approx(2.0)
    assert cam0["verdicts_minute"] == 100 and cam0["reasons_minute"] == {"anomaly": 10, "pass": 90}
    assert cam0["reject_share_minute"] == pytest.approx(0.1)
    assert cam0["latency_p50_ms"] == pytest.approx(40.0, abs=0.01)
    assert s["model"] == "m1" and s["verdicts_minute"] == 100 and len(s["gallery"]) == 10
    # two minutes later: the minute is empty, the hour still holds them; the camera has stopped
    later = v.snapshot(T0 + 170)
    cam0 = later["cameras"][0]
    assert cam0["verdicts_minute"] == 0 and cam0["reject_share_minute"] is None
    assert cam0["reasons_hour"] == {"anomaly": 10, "pass": 90} and cam0["frames_per_s"] == 0
    assert "camera_stopped" in _kinds(later, "cam0")


def test_alarms_reject_rate_consecutive_and_line_rejects():
    v = _view(reject_rate_limit=0.15, min_verdicts=10, consecutive_rejects=5)  # cam0: 6 of 30 rejected
    for i in range(30):
        t = T0 + i * 0.1
        v.add_sent({"camera": "cam0", "t_acq_ns": str(int(t * 1e9))})
        v.add_sent({"camera": "cam1", "t_acq_ns": str(int(t * 1e9))})
        v.add_verdict(_verdict("cam0", i, t, "pass" if i < 24 else "anomaly"))  # 6 rejects in a row at the end
        v.add_verdict(_verdict("cam1", i, t, "late" if i == 3 else "pass"))
    v.set_worker(0, {"engine": "x"})
    s = v.snapshot(T0 + 3)
    assert _kinds(s, "cam0") == {"reject_rate", "consecutive"}
    assert _kinds(s, "cam1") == {"line_rejects"}
    assert "1 late" in next(a["text"] for a in s["alarms"] if a.get("camera") == "cam1")
    v.add_verdict(_verdict("cam0", 30, T0 + 3.05))  # a pass ends the run of rejects
    assert "consecutive" not in _kinds(v.snapshot(T0 + 3.1), "cam0")


def test_redis_away_is_the_one_alarm_and_a_missing_worker_is_named():
    v = _view()
    v.set_redis(False, "Connection refused", T0)
    s = v.snapshot(T0 + 30)
    assert [a["kind"] for a in s["alarms"]] == ["redis"] and "30 s" in s["alarms"][0]["text"]
    v.set_redis(True, "", T0 + 31)
    assert "worker" in _kinds(v.snapshot(T0 + 31))  # no status hash read yet


def test_gallery_keeps_the_latest_rejects_with_their_image_urls():
    v = _view(gallery=3)
    for i in range(5):
        v.add_verdict(_verdict("cam0", i, T0 + i, "anomaly", map_path=f"/srv/rejects/cam0_1_{i}.png"))
    v.add_verdict(_verdict("ghost", 9, T0 + 6, "unknown_camera"))  # a camera outside the config: shown, not counted
    g = v.snapshot(T0 + 6)["gallery"]
    assert [r["frame_id"] for r in g] == ["9", "4", "3"] and g[1]["image"] == "/rejects/cam0_1_4.png"
    assert "image" not in g[0]


def _line(tmp_path, url, checkpoint, cache, port, stream="page:v"):
    return LineConfig(
        cameras=[
            CameraConfig(name="cam0", fps=3, synthetic={"seed": 0, "size": 96}),
            # every frame of cam1 is above its threshold: anomaly rejects with overlays for the gallery
            CameraConfig(name="cam1", fps=3, threshold=-1.0, synthetic={"seed": 1, "size": 96}),
        ],
        worker=WorkerConfig(
            endpoints=[f"ipc://{tmp_path}/w0.sock"],
            checkpoint=str(checkpoint),
            engine="onnxruntime",
            threads=1,
            deadline_ms=2000,
            archive={"dir": str(tmp_path / "rejects")},
        ),
        redis=RedisConfig(url=url, stream=stream),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(port=port, refresh_s=0.5, camera_stale_s=3.0, consecutive_rejects=3),
        cache_dir=str(cache),
    )


def test_routes_serve_state_page_and_only_archived_images(tmp_path, redis_server, tiny_checkpoint, engine_cache):
    cfg = _line(tmp_path, redis_server.url, tiny_checkpoint, engine_cache, 1, stream="page:routes")
    (tmp_path / "rejects").mkdir()
    (tmp_path / "rejects" / "cam1_1_7.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "secret.png").write_bytes(b"secret")
    r = redis.Redis.from_url(redis_server.url)
    r.xadd("page:routes", _verdict("cam1", 7, time.time(), "anomaly", map_path=str(tmp_path / "rejects/cam1_1_7.png")))
    follower = StreamFollower(cfg)
    follower.poll(block_ms=10)
    follower.latest = follower.view.snapshot(time.time())
    client = TestClient(build_app(cfg, follower))
    assert "GRD-Net line" in client.get("/").text
    state = client.get("/api/state").json()
    assert state["gallery"][0]["image"] == "/rejects/cam1_1_7.png"
    assert client.get("/rejects/cam1_1_7.png").content == b"\x89PNG fake"
    for bad in ("..%2Fsecret.png", "%2E%2E%2Fsecret.png", "secret.txt", "cam1_1_8.png"):
        assert client.get(f"/rejects/{bad}").status_code == 404, bad


def test_page_in_a_real_browser_follows_a_running_line(tmp_path, fresh_redis, tiny_checkpoint, engine_cache, browser):
    """The page loads, its figures move while the line runs, a reject appears in the gallery with its overlay and
    opens on a click, and stopping redis-server raises the Redis alarm."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = port_for("127.0.0.1", 0)
    cfg = _line(tmp_path, fresh_redis.url, tiny_checkpoint, engine_cache, port)
    sup = Supervisor(cfg)
    try:
        sup.start()
        wait = WebDriverWait(browser, 30, poll_frequency=0.2)
        browser.get(f"http://127.0.0.1:{port}/")
        assert browser.title == "GRD-Net line"

        def verdicts_minute(d):
            text = d.find_element(By.ID, "verdicts-minute").text
            return int(text) if text.isdigit() else 0

        wait.until(lambda d: verdicts_minute(d) > 0)
        first, seq = verdicts_minute(browser), int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-seq"))
        wait.until(lambda d: verdicts_minute(d) > first)  # the figures move
        assert int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-seq")) > seq
        assert browser.find_element(By.ID, "engine").text.startswith("onnxruntime")
        # cam1 rejects every frame; cam0 may reject one too (the tiny model), so open one of cam1's
        tile = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#gallery .reject[data-camera="cam1"] img'))[0]
        wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", tile) > 0)  # the overlay loaded
        tile.click()
        fields = browser.find_element(By.ID, "detail-fields").text
        assert "camera cam1" in fields and "reason anomaly" in fields
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#alarms .alarm[data-kind="consecutive"]'))
        sup.poll()

        fresh_redis.stop()
        alarm = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#alarms .alarm[data-kind="redis"]'))
        assert "Redis unreachable" in alarm[0].text and browser.find_element(By.ID, "redis-state").text == "AWAY"
        fresh_redis.start()  # so the line drains its buffered verdicts quickly
        wait.until(lambda d: d.find_element(By.ID, "redis-state").text == "up")
    finally:
        sup.stop()
