"""The interface every engine implements: ``infer(frames, roi=None) -> (scores, maps)``."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class EngineError(RuntimeError):
    """An engine that cannot be loaded or run on this machine; the message says what to do."""


class Engine(ABC):
    """Holds one compiled GRD-Net. Frames are uint8 ``[B, S, S, C]`` at the model's size, B <= max_batch."""

    name: str = "engine"

    def __init__(self, image_size: int, channels: int, max_batch: int) -> None:
        self.image_size, self.channels, self.max_batch = image_size, channels, max_batch

    def validate(self, frames: np.ndarray, roi: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Check shapes/dtypes (ValueError naming expected and got); default the ROI to all-inspect."""
        s, c = self.image_size, self.channels
        if not isinstance(frames, np.ndarray):
            raise ValueError(f"frames: expected numpy uint8 [B, {s}, {s}, {c}], got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise ValueError(f"frames: expected dtype uint8, got {frames.dtype}")
        if frames.ndim != 4 or frames.shape[1:3] != (s, s):
            raise ValueError(f"frames: expected shape [B, {s}, {s}, {c}], got {list(frames.shape)}")
        if frames.shape[3] != c:
            raise ValueError(f"frames: expected {c} channels, got {frames.shape[3]}")
        b = frames.shape[0]
        if not 1 <= b <= self.max_batch:
            raise ValueError(f"frames: expected batch 1..{self.max_batch}, got {b}")
        if roi is None:
            roi = np.full((b, s, s), 255, np.uint8)
        elif roi.dtype != np.uint8 or roi.shape != (b, s, s):
            raise ValueError(f"roi: expected uint8 [{b}, {s}, {s}], got {roi.dtype} {list(roi.shape)}")
        return np.ascontiguousarray(frames), np.ascontiguousarray(roi)

    def infer(
        self, frames: np.ndarray, roi: np.ndarray | None = None, want_maps: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores float32 ``[B]``, maps float32 ``[B, S, S]`` or None when not wanted)."""
        frames, roi = self.validate(frames, roi)
        return self._run(frames, roi, want_maps)

    @abstractmethod
    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]: ...

    def describe(self) -> str:
        return f"{self.name} ({self.image_size}px x{self.channels}, max batch {self.max_batch})"
