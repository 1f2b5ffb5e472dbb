"""The start-of-shift challenge through the real line (replay, worker, Redis), and the gate it opens."""

import datetime
import json
import shutil

import pytest
import yaml

from pipeline.challenge import require_challenge, run_challenge
from pipeline.config import CameraConfig, LineConfig, MetricsConfig, PageConfig, RedisConfig, WorkerConfig
from tests.conftest import assert_one_line_error, run_cli


def _cfg(tmp_path, url, checkpoint, cache, threshold):
    return LineConfig(
        cameras=[CameraConfig(name="body", threshold=threshold)],
        worker=WorkerConfig(
            endpoints=[f"ipc://{tmp_path}/w.sock"],
            checkpoint=str(checkpoint),
            engine="onnxruntime",
            threads=1,
            archive={"enabled": False},
        ),
        redis=RedisConfig(url=url),
        metrics=MetricsConfig(enabled=False),
        page=PageConfig(enabled=False),
        cache_dir=str(cache),
        challenge={"records_dir": str(tmp_path / "records"), "max_frr": 0.0},
    )


def test_challenge_judges_every_known_unit_and_gates_production(
    tmp_path, redis_server, tiny_data, tiny_checkpoint, engine_cache
):
    strict = _cfg(tmp_path, redis_server.url, tiny_checkpoint, engine_cache, threshold=-1.0)  # rejects everything
    rec = run_challenge(strict, tiny_data)
    n_good = len(list((tiny_data / "test" / "good").glob("*.png")))
    assert rec["goods"] == n_good and rec["defects"] + n_good == len(rec["units"])
    assert rec["defects_ejected"] == rec["defects"], "every known defect ejected (the model rejected it)"
    assert rec["false_reject_rate"] == 1.0 and not rec["passed"], "but every good one too: refused"
    assert all(u["reason"] == "anomaly" for u in rec["units"])
    with pytest.raises(ValueError, match="the last challenge .* failed"):
        require_challenge(strict)

    lenient = run_challenge(strict, tiny_data, max_frr=1.0)
    assert lenient["passed"] and require_challenge(strict)["time"] == lenient["time"]
    moved = strict.model_copy(update={"cameras": [CameraConfig(name="body", threshold=-0.5)]})
    with pytest.raises(ValueError, match="threshold .* run the challenge again"):
        require_challenge(moved)
    latest = tmp_path / "records" / "latest.json"
    old = json.loads(latest.read_text())
    old["time"] = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=13)).isoformat()
    latest.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="13.0 h old"):
        require_challenge(strict)


def test_challenge_bad_input_is_one_line(tmp_path, tiny_data):
    only_good = tmp_path / "only_good"
    shutil.copytree(tiny_data / "test" / "good", only_good / "test" / "good")
    cfg = {"cameras": [{"name": "body"}], "challenge": {"records_dir": str(tmp_path / "records")}}
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert_one_line_error(run_cli("challenge", "--set", str(only_good), "--config", str(path)), "needs defective units")
    assert_one_line_error(run_cli("run", "--config", str(path), "--require-challenge"), "no challenge record")
