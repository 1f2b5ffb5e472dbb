"""``record`` and ``replay`` commands: write a recorded stream from any source; play one through the line."""

from __future__ import annotations

from pathlib import Path

from model.errors import InputError
from pipeline.camera_process import camera_source, stamp_header
from pipeline.config import (
    CameraConfig,
    GenICamSource,
    LineConfig,
    MetricsConfig,
    RedisConfig,
    ReplaySource,
    SyntheticSource,
    WorkerConfig,
)
from pipeline.demo import local_endpoint, page_config, report_run, run_line_until, split_frames
from pipeline.recorder import Recorder


def _device_fields(device: str | None) -> dict:
    if not device:
        return {}
    if device.startswith("#"):
        return {"index": int(device[1:])}
    return {"serial_number": device} if device.isdigit() else {"device_id": device}


def record(
    *,
    out: Path,
    frames: int,
    source: str,
    fps: float,
    cameras: int,
    defect_rate: float,
    seed: int,
    cti: str | None,
    device: str | None,
    path: str | None,
) -> int:
    """Pull ``frames`` frames from the source(s), round-robin over cameras, into ``out``."""
    if frames < 1:
        raise InputError("--frames must be >= 1")
    if source == "synthetic":
        cams = [
            CameraConfig(name=f"cam{i}", fps=fps, synthetic=SyntheticSource(seed=seed + i, defect_rate=defect_rate))
            for i in range(cameras)
        ]
    elif source == "genicam":
        cams = [
            CameraConfig(
                name="cam0", source="genicam", fps=fps, genicam=GenICamSource(cti=cti, **_device_fields(device))
            )
        ]
    else:
        if not path:
            raise InputError("--source replay needs --path")
        cams = [CameraConfig(name="cam0", source="replay", replay=ReplaySource(path=path, rate="max"))]
    shares = split_frames(frames, len(cams))
    iters = [camera_source(c, i) for i, c in enumerate(cams)]
    recorder = Recorder(out)
    written = 0
    try:
        for i, (cam, it) in enumerate(zip(cams, iters, strict=True)):
            for k, sf in zip(range(shares[i]), it, strict=False):
                header = stamp_header(sf, cam, k)
                recorder.write(header, sf.pixels)
                written += 1
    finally:
        recorder.close()
        for it in iters:
            if hasattr(it, "close"):
                it.close()
    return written


def count_frames(folder: Path) -> int:
    index = folder / "stream.jsonl"
    if index.is_file():
        return sum(1 for line in index.read_text().splitlines() if line.strip())
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def replay(
    folder: Path,
    rate: str,
    redis_url: str,
    engine: str,
    summary_json: str | None,
    stream: str = "grdnet:verdicts",
    page: int | None = None,
) -> int:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: replay folder not found")
    total = count_frames(folder)
    if total == 0:
        raise InputError(f"{folder}: nothing to replay")
    # as fast as the line takes it: every frame is judged, none is late or turned away; else live rules
    pace = {"deadline_ms": 3.6e6, "max_queue": 1_000_000} if rate == "max" else {"deadline_ms": 250.0}
    cfg = LineConfig(
        cameras=[CameraConfig(name="replay", source="replay", replay=ReplaySource(path=str(folder), rate=rate))],
        worker=WorkerConfig(endpoints=[local_endpoint("replay")], engine=engine, **pace),
        redis=RedisConfig(url=redis_url, stream=stream),
        metrics=MetricsConfig(enabled=False),
        page=page_config(page),
    )
    return report_run(run_line_until(cfg, total, timeout_s=600 + total), total, summary_json)
