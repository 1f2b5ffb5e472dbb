"""Start-of-shift challenge (``run_line.py challenge``): a known set of good and defective units through the
configured line (its camera settings, worker, engine and model, as a replay), judged against what is known. The
record it writes is what ``run --require-challenge`` checks before production starts.

A defective unit counts as ejected only when the model rejected it (reason ``anomaly``): a ``late`` or ``lost``
reject ejects it too, but proves nothing about the model.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import redis

from model.checkpoint import read_meta
from model.dataset import index_split
from model.errors import InputError
from pipeline.config import LineConfig, MetricsConfig, PageConfig, ReplaySource

RECORD = "latest.json"


def challenge_recording(set_dir: Path, camera: str, out: Path) -> list[dict]:
    """The set's ``test/`` images (docs/design.md 3.2 layout) as a recorded stream of ``camera`` in ``out``."""
    samples = index_split(set_dir, "test", use_roi=False)
    if not any(s.label != "good" for s in samples):
        raise InputError(f"{set_dir}: a challenge set needs defective units (test/<defect>/), it has only good ones")
    if not any(s.label == "good" for s in samples):
        raise InputError(f"{set_dir}: a challenge set needs good units (test/good/), it has only defective ones")
    (out / "frames" / camera).mkdir(parents=True, exist_ok=True)
    units = []
    with open(out / "stream.jsonl", "w") as index:
        for i, s in enumerate(samples):
            rel = Path("frames") / camera / f"{i}{s.path.suffix.lower()}"
            os.symlink(s.path.resolve(), out / rel)
            index.write(json.dumps({"camera": camera, "frame_id": i, "slot": 0, "file": str(rel)}) + "\n")
            units.append({"frame_id": i, "path": str(s.path), "label": s.label})
    return units


def run_challenge(cfg: LineConfig, set_dir: Path, camera: str | None = None, max_frr: float | None = None) -> dict:
    """Replay the set through ``cfg``'s line; returns the record (also written to ``challenge.records_dir``)."""
    from pipeline.demo import run_line_until
    from pipeline.redis_local import ensure_redis

    cam = next((c for c in cfg.cameras if c.name == camera), None) if camera else cfg.cameras[0]
    if cam is None:
        raise InputError(f"--camera {camera}: not a camera of the line ({', '.join(c.name for c in cfg.cameras)})")
    max_frr = cfg.challenge.max_frr if max_frr is None else max_frr
    rec = Path(tempfile.mkdtemp(prefix="grdnet-challenge-"))
    units = challenge_recording(Path(set_dir), cam.name, rec)
    meta = read_meta(Path(cfg.worker.checkpoint))
    threshold = cam.threshold if cam.threshold is not None else meta.threshold
    url, local = ensure_redis(cfg.redis.url)
    stream = f"grdnet:challenge:{time.time_ns()}"
    replay_cam = cam.model_copy(
        update={
            "source": "replay",
            "replay": ReplaySource(path=str(rec), rate="max"),
            "genicam": None,
            "max_frames": None,
        }
    )
    run_cfg = cfg.model_copy(
        update={
            "cameras": [replay_cam],
            "carousel": None,
            "metrics": MetricsConfig(enabled=False),
            "page": PageConfig(enabled=False),
            "redis": cfg.redis.model_copy(update={"url": url, "stream": stream}),
            # every unit is judged: none may be late or turned away, whatever the pace
            "worker": cfg.worker.model_copy(update={"deadline_ms": 3.6e6, "max_queue": 1_000_000}),
        }
    )
    try:
        run_line_until(run_cfg, len(units), timeout_s=300 + 2 * len(units))
        rows = {int(f[b"frame_id"]): f[b"reason"].decode() for _, f in redis.Redis.from_url(url).xrange(stream)}
    finally:
        if local:
            local.stop()
    for u in units:
        reason = rows.get(u["frame_id"], "no verdict")
        u["reason"] = reason
        if u["label"] == "good":
            u["outcome"] = "passed" if reason == "pass" else "false reject"
        else:
            u["outcome"] = "ejected" if reason == "anomaly" else "escaped" if reason == "pass" else "not judged"
    goods = [u for u in units if u["label"] == "good"]
    defects = [u for u in units if u["label"] != "good"]
    frr = sum(u["outcome"] != "passed" for u in goods) / len(goods)
    ejected = sum(u["outcome"] == "ejected" for u in defects)
    record = {
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "passed": ejected == len(defects) and frr <= max_frr,
        "model": meta.id,
        "checkpoint": cfg.worker.checkpoint,
        "camera": cam.name,
        "threshold": threshold,
        "set": str(set_dir),
        "defects": len(defects),
        "defects_ejected": ejected,
        "goods": len(goods),
        "false_reject_rate": frr,
        "max_false_reject_rate": max_frr,
        "units": units,
    }
    out = Path(cfg.challenge.records_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1)
    (out / f"challenge-{record['time'].replace(':', '')}.json").write_text(text)
    (out / RECORD).write_text(text)
    return record


def require_challenge(cfg: LineConfig) -> dict:
    """``run --require-challenge``: the latest record must have passed, for this model and threshold, recently;
    otherwise ValueError with one line that says what to do."""
    path = Path(cfg.challenge.records_dir) / RECORD
    if not path.is_file():
        raise InputError(f"{path}: no challenge record; run `run_line.py challenge --set DIR` before production")
    try:
        record = json.loads(path.read_text())
        when = datetime.datetime.fromisoformat(record["time"])
        model, passed, thr, cam = record["model"], record["passed"], record["threshold"], record["camera"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable challenge record ({exc})") from None
    meta = read_meta(Path(cfg.worker.checkpoint))
    line_cam = next((c for c in cfg.cameras if c.name == cam), None)
    line_thr = line_cam.threshold if line_cam and line_cam.threshold is not None else meta.threshold
    age_h = (datetime.datetime.now(datetime.UTC) - when).total_seconds() / 3600
    if not passed:
        raise InputError(f"{path}: the last challenge ({record['time']}) failed; production stays stopped")
    if model != meta.id or abs(thr - line_thr) > 1e-9:
        raise InputError(
            f"{path}: the challenge was passed by model {model} at threshold {thr:.4f}, the line runs {meta.id} at "
            f"{line_thr:.4f}; run the challenge again"
        )
    if age_h > cfg.challenge.max_age_h:
        raise InputError(f"{path}: the last challenge is {age_h:.1f} h old (limit {cfg.challenge.max_age_h:g} h)")
    return record
