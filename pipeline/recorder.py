"""Recorded streams (docs/design.md 3.4): ``DIR/stream.jsonl`` (one wire header per line plus ``file``) and
``DIR/frames/<camera>/<frame_id>.png`` (lossless). Replay reads them back, or a plain image folder."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from pipeline.config import ReplaySource
from pipeline.sources.frames import SourceFrame
from pipeline.wire import FrameHeader

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
        raise ValueError(f"{path}: unreadable image")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return img


def _pace(rate: str) -> float | None:
    return None if rate in ("realtime", "max") else 1.0 / float(rate)


def replay_frames(cfg: ReplaySource) -> Iterator[SourceFrame]:
    """Frames of a recorded stream (identity kept) or a plain folder (sorted by name), paced by ``rate``."""
    root = Path(cfg.path)
    index = root / "stream.jsonl"
    if not root.is_dir():
        raise ValueError(f"{root}: replay folder not found")
    while True:
        if index.is_file():
            entries = []
            for n, line in enumerate(index.read_text().splitlines(), 1):
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{index}:{n}: bad JSON line: {exc.msg}") from None
        else:
            files = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"{root}: no stream.jsonl and no images")
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
            pixels = _read_png(root / e["file"])
            yield SourceFrame(pixels, time.time_ns(), e.get("camera"), e.get("frame_id"), e.get("slot"))
        if not cfg.loop:
            return
