"""Recorded streams (docs/design.md 3.4): ``DIR/stream.jsonl`` (one wire header per line plus ``file``) and
``DIR/frames/<camera>/<frame_id>.png`` (lossless). Replay reads them back, or a plain image folder."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from model.errors import InputError
from pipeline.config import CameraConfig, LineConfig, ReplaySource
from pipeline.sources.frames import SourceFrame
from pipeline.wire import FrameHeader, valid_camera_name

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class Recorder:
    """Appends frames to a recorded stream; the JSONL line is written after its PNG, so every line has a file."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        (self.out / "frames").mkdir(parents=True, exist_ok=True)
        self.index = open(self.out / "stream.jsonl", "a", buffering=1)  # noqa: SIM115 - closed in close()

    def write(self, header: FrameHeader, pixels: np.ndarray) -> None:
        rel = Path("frames") / header.camera / f"{header.frame_id}.png"
        (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
        img = pixels[..., ::-1] if pixels.ndim == 3 else pixels  # PNG via OpenCV is BGR
        if not cv2.imwrite(str(self.out / rel), img):
            raise OSError(f"{self.out / rel}: cannot write")
        line = json.loads(header.to_json())
        line["file"] = str(rel)
        self.index.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.index.close()


def _read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: unreadable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def _pace(rate: str) -> float | None:
    return None if rate in ("realtime", "max") else 1.0 / float(rate)


def _index_entries(index: Path) -> list[dict]:
    entries = []
    for n, line in enumerate(index.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{index}:{n}: bad JSON line: {exc.msg}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise InputError(f"{index}:{n}: not a recorded frame (an object with a file)")
        if "camera" in entry and not valid_camera_name(entry["camera"]):
            raise InputError(f"{index}:{n}: camera {str(entry['camera'])[:40]!r} is not a valid camera name")
        entries.append(entry)
    return entries


def _inside(root: Path, rel: str, index: Path) -> Path:
    """A recorded file path, refused when it leads out of the recording."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts or not parts:
        raise InputError(f"{index}: file {rel[:60]!r} lies outside the recording")
    return root / rel  # lexical: a symlink the recording's author placed inside it is theirs to place


def known_cameras(cfg: LineConfig) -> dict[str, CameraConfig]:
    """The cameras a worker accepts frames from: the configured ones, and for a replay source the camera names its
    recording holds (judged with the replay camera's settings). Any other name is an ``unknown_camera`` reject."""
    known = {c.name: c for c in cfg.cameras}
    for c in cfg.cameras:
        index = Path(c.replay.path) / "stream.jsonl" if c.replay else None
        if index is not None and index.is_file():
            for e in _index_entries(index):
                known.setdefault(e.get("camera", c.name), c)
    return known


def replay_frames(cfg: ReplaySource) -> Iterator[SourceFrame]:
    """Frames of a recorded stream (identity kept) or a plain folder (sorted by name), paced by ``rate``."""
    root = Path(cfg.path)
    index = root / "stream.jsonl"
    if not root.is_dir():
        raise InputError(f"{root}: replay folder not found")
    while True:
        if index.is_file():
            entries = _index_entries(index)
        else:
            files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise InputError(f"{root}: no stream.jsonl and no images")
            entries = [{"file": p.name} for p in files]
        period = _pace(cfg.rate)
        t0_wall, t0_rec = time.monotonic_ns(), None
        for i, e in enumerate(entries):
            if cfg.rate == "realtime" and "t_acq_ns" in e:
                t0_rec = e["t_acq_ns"] if t0_rec is None else t0_rec
                delay = (e["t_acq_ns"] - t0_rec) - (time.monotonic_ns() - t0_wall)
            elif period is not None:
                delay = int(i * period * 1e9) - (time.monotonic_ns() - t0_wall)
            else:
                delay = 0
            if delay > 0:
                time.sleep(delay / 1e9)
            pixels = _read_png(_inside(root, e["file"], index))
            yield SourceFrame(
                pixels, time.time_ns(), e.get("camera"), e.get("frame_id"), e.get("slot"), e.get("trigger")
            )
        if not cfg.loop:
            return
