"""The interface every engine implements: ``infer(frames, roi=None) -> (scores, maps)``."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from model.errors import GrdnetError, InputError


def has_fast_half(capability_major: int) -> bool:
    """Half precision pays on GPUs of compute capability 7.0 and later (tensor cores); the one rule the torch
    CUDA engine and auto's TensorRT plan both follow."""
    return capability_major >= 7


def captured_sizes(max_batch: int) -> list[int]:
    """Batch sizes that get a CUDA graph: powers of two below ``max_batch``, and ``max_batch``."""
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return [*sizes, max_batch]


def padded_size(b: int, sizes: list[int]) -> int:
    """The smallest captured size that holds ``b`` frames."""
    for s in sizes:
        if s >= b:
            return s
    raise ValueError(f"batch {b} above the largest captured size {sizes[-1]}")


def copy_unless_staged(staged: np.ndarray, arr: np.ndarray) -> None:
    """Put ``arr`` into an engine's input memory, unless the caller already wrote it there (``staging``)."""
    if not np.shares_memory(staged, arr):
        staged[...] = arr


class EngineError(GrdnetError, RuntimeError):
    """An engine that cannot be loaded or run on this machine; the message says what to do."""


class Engine(ABC):
    """Holds one compiled GRD-Net. Frames are uint8 ``[B, S, S, C]`` at the model's size, B <= max_batch."""

    name: str = "engine"

    def __init__(self, image_size: int, channels: int, max_batch: int) -> None:
        self.image_size, self.channels, self.max_batch = image_size, channels, max_batch
        self._stage: tuple[np.ndarray, np.ndarray] | None = None
        self._last_maps: np.ndarray | None = None  # the last batch's maps, kept by engines that compute them anyway

    def check_batch(self, b: int) -> None:
        if not 1 <= b <= self.max_batch:
            raise InputError(f"frames: expected batch 1..{self.max_batch}, got {b}")

    def validate(self, frames: np.ndarray, roi: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Check shapes/dtypes (ValueError naming expected and got); default the ROI to all-inspect."""
        s, c = self.image_size, self.channels
        if not isinstance(frames, np.ndarray):
            raise InputError(f"frames: expected numpy uint8 [B, {s}, {s}, {c}], got {type(frames).__name__}")
        if frames.dtype != np.uint8:
            raise InputError(f"frames: expected dtype uint8, got {frames.dtype}")
        if frames.ndim != 4 or frames.shape[1:3] != (s, s):
            raise InputError(f"frames: expected shape [B, {s}, {s}, {c}], got {list(frames.shape)}")
        if frames.shape[3] != c:
            raise InputError(f"frames: expected {c} channels, got {frames.shape[3]}")
        b = frames.shape[0]
        self.check_batch(b)
        if roi is None:
            roi = np.full((b, s, s), 255, np.uint8)
        elif roi.dtype != np.uint8 or roi.shape != (b, s, s):
            raise InputError(f"roi: expected uint8 [{b}, {s}, {s}], got {roi.dtype} {list(roi.shape)}")
        return np.ascontiguousarray(frames), np.ascontiguousarray(roi)

    def infer(
        self, frames: np.ndarray, roi: np.ndarray | None = None, want_maps: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(scores float32 ``[B]``, maps float32 ``[B, S, S]`` or None when not wanted)."""
        frames, roi = self.validate(frames, roi)
        return self._run(frames, roi, want_maps)

    def staging(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Where a caller writes the next batch (frames ``[b, S, S, C]``, ROI ``[b, S, S]``, uint8) before
        ``infer_staged(b)``: the engine's own input memory (pinned host buffers on a GPU), else arrays allocated
        once at max batch. The worker assembles its batch here, so no stacked copy is made per batch."""
        self.check_batch(b)
        if self._stage is None:
            s, c = self.image_size, self.channels
            shape = (self.max_batch, s, s)
            self._stage = (np.zeros((*shape, c), np.uint8), np.zeros(shape, np.uint8))
        return self._stage[0][:b], self._stage[1][:b]

    def infer_staged(self, b: int, want_maps: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """``infer`` on the first ``b`` rows written through ``staging`` (their shapes are right by construction)."""
        frames, roi = self.staging(b)
        return self._run(frames, roi, want_maps)

    def maps_of(self, rows: list[int]) -> np.ndarray:
        """Maps ``[len(rows), S, S]`` of the given rows of the last batch, run with ``want_maps=False``: the maps
        a caller needs only for some frames (rejects to archive). A GPU engine copies back just those rows; a CPU
        engine computed them with the scores and kept the last batch's."""
        if self._last_maps is None:
            raise RuntimeError(f"{self.name}: no batch has run yet")
        return self._last_maps[list(rows)].copy()

    @abstractmethod
    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]: ...

    def describe(self) -> str:
        return f"{self.name} ({self.image_size}px x{self.channels}, max batch {self.max_batch})"
