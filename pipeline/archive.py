"""Reject archive: map-over-frame overlay PNGs for rejected frames, written off the hot path, bounded on disk
(oldest removed first). The verdict names the file before it is written; a full queue skips (counted)."""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from model.report import overlay
from pipeline.wire import valid_camera_name

log = logging.getLogger("grdnet.archive")


class RejectArchive:
    def __init__(self, folder: Path, max_bytes: int, on_skip=None, queue_size: int = 64) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.files: deque[tuple[Path, int]] = deque(
            (p, p.stat().st_size) for p in sorted(self.folder.glob("*.png"), key=lambda p: p.stat().st_mtime)
        )
        self.total = sum(s for _, s in self.files)
        self.jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self.on_skip = on_skip or (lambda: None)
        self.thread = threading.Thread(target=self._loop, name="reject-archive", daemon=True)
        self.thread.start()

    def path_for(self, camera: str, epoch: int, frame_id: int) -> Path | None:
        """``<camera>_<epoch>_<frame_id>.png`` inside the archive folder; None (nothing written, counted) for a name
        that is not a valid camera name or a path that would leave the folder (defence in depth: the wire
        decoder refuses such names before they get here)."""
        if not valid_camera_name(camera):
            self.on_skip()
            return None
        path = self.folder / f"{camera}_{epoch}_{frame_id}.png"
        if path.resolve().parent != self.folder.resolve():
            self.on_skip()
            return None
        return path

    def submit(self, path: Path, frame: np.ndarray, amap: np.ndarray) -> bool:
        try:
            self.jobs.put_nowait((path, frame.copy(), amap.copy()))
            return True
        except queue.Full:
            self.on_skip()
            return False

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            path, frame, amap = job
            try:
                img = overlay(frame if frame.ndim == 3 else frame[..., None], amap)
                cv2.imwrite(str(path), img[..., ::-1])
                size = path.stat().st_size
                self.files.append((path, size))
                self.total += size
                while self.total > self.max_bytes and len(self.files) > 1:
                    old, s = self.files.popleft()
                    old.unlink(missing_ok=True)
                    self.total -= s
            except OSError as exc:
                log.error("reject archive: %s", exc)
                self.on_skip()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=10)
