"""Frame wire format (docs/design.md 3.3): two ZeroMQ frames, a JSON header then the raw pixels.

``decode`` turns anything malformed into ``BadFrame`` with a ``kind`` (for counting and rate-limited
logging) and whatever camera/slot/frame_id the header still named (for the ``bad_frame`` verdict).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

import numpy as np

from model.errors import GrdnetError

WIRE_VERSION = 1
REQUIRED = ("v", "camera", "frame_id", "slot", "t_acq_ns", "shape", "dtype")
# A camera name reaches file names, metric labels and Redis keys: letters, digits, '_', '-', '.', at most 64,
# not starting with '.' or '-' (no path, no hidden file, no option, no ':' that would split a key).
CAMERA_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
MAX_HEADER_BYTES = 2048  # a valid header is ~150 bytes: a bigger one is refused before it is parsed
MAX_SIDE = 16384  # pixels per side: a header claiming more is refused before its size is computed
INT64 = 2**63


def valid_camera_name(name: object) -> bool:
    return isinstance(name, str) and CAMERA_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class FrameHeader:
    camera: str
    frame_id: int
    slot: int
    t_acq_ns: int
    shape: tuple[int, ...]
    dtype: str = "uint8"
    v: int = WIRE_VERSION
    epoch: int = 0  # the sending camera process's start (ns): with camera and frame_id, a frame's identity
    trigger: int | None = None  # the encoder tick the camera reports for the frame (a carousel line), not a counter

    def to_json(self) -> bytes:
        h = {
            "v": self.v,
            "camera": self.camera,
            "epoch": self.epoch,
            "frame_id": self.frame_id,
            "slot": self.slot,
            "t_acq_ns": self.t_acq_ns,
            "shape": list(self.shape),
            "dtype": self.dtype,
        }
        if self.trigger is not None:
            h["trigger"] = self.trigger
        return json.dumps(h, separators=(",", ":")).encode()


@dataclass
class Frame:
    header: FrameHeader
    pixels: np.ndarray
    t_recv_ns: int = 0


class BadFrame(GrdnetError, ValueError):
    """A message that is not a valid frame; ``kind`` names the fault, the rest is what the header named."""

    def __init__(
        self,
        kind: str,
        detail: str,
        camera: str | None = None,
        slot: int | None = None,
        frame_id: int | None = None,
        epoch: int = 0,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail
        self.camera, self.slot, self.frame_id, self.epoch = camera, slot, frame_id, epoch


def encode(header: FrameHeader, pixels: np.ndarray) -> list:
    """[header bytes, pixel buffer]; the buffer is the array itself (no copy) when C-contiguous."""
    if pixels.dtype != np.uint8 or tuple(pixels.shape) != tuple(header.shape):
        raise ValueError(f"pixels {pixels.dtype} {list(pixels.shape)} do not match header {list(header.shape)}")
    return [header.to_json(), np.ascontiguousarray(pixels)]


def _int(raw: dict, key: str, ctx: dict, default: int | None = None) -> int:
    """A non-negative int64 (frame ids, slots, times, epochs all are); anything else is a bad frame."""
    value = raw.get(key, default)
    if not _is_id(value):
        raise BadFrame("field", f"{key} must be an integer in [0, 2^63), got {_short(value)}", **ctx)
    return value


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < INT64


def _short(value: object, limit: int = 40) -> str:
    """repr cut to ``limit`` characters: what a hostile header said reaches the log, but not 100 kB of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def decode(parts: list) -> Frame:
    """ZeroMQ parts (bytes or zmq.Frame) -> Frame; raises BadFrame. Pixels are a read-only view, no copy."""
    if len(parts) != 2:
        raise BadFrame("parts", f"expected 2 message parts, got {len(parts)}")
    head = parts[0].bytes if hasattr(parts[0], "bytes") else parts[0]
    if len(head) > MAX_HEADER_BYTES:
        raise BadFrame("header_size", f"header of {len(head)} bytes, at most {MAX_HEADER_BYTES}")
    try:
        raw = json.loads(head)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a number past int limits, deep nesting
        raise BadFrame("json", f"header is not JSON: {_short(getattr(exc, 'msg', str(exc)), 80)}") from None
    if not isinstance(raw, dict):
        raise BadFrame("json", "header is not a JSON object")
    # what the header names, kept only where it is safe to use in a verdict (valid name, int64 ids)
    camera = raw.get("camera") if valid_camera_name(raw.get("camera")) else None
    slot, fid, epoch = (raw.get(k) if _is_id(raw.get(k)) else None for k in ("slot", "frame_id", "epoch"))
    ctx = {"camera": camera, "slot": slot, "frame_id": fid, "epoch": epoch or 0}
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise BadFrame("field", f"missing {', '.join(missing)}", **ctx)
    if raw["v"] != WIRE_VERSION:
        raise BadFrame("version", f"wire version {_short(raw['v'])}, expected {WIRE_VERSION}", **ctx)
    if camera is None:
        raise BadFrame("camera", f"camera must match {CAMERA_NAME.pattern}, got {_short(raw['camera'])}", **ctx)
    frame_id, slot_v, t_acq = _int(raw, "frame_id", ctx), _int(raw, "slot", ctx), _int(raw, "t_acq_ns", ctx)
    epoch = _int(raw, "epoch", ctx, default=0)
    trigger = _int(raw, "trigger", ctx) if "trigger" in raw else None
    shape = raw["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) not in (2, 3)
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_SIDE for d in shape[:2])
        or (len(shape) == 3 and shape[2] not in (1, 3, 4))
    ):
        raise BadFrame(
            "field", f"shape must be [H, W] or [H, W, 1|3|4] with sides 1..{MAX_SIDE}, got {_short(shape)}", **ctx
        )
    if raw["dtype"] != "uint8":
        raise BadFrame("dtype", f"dtype {_short(raw['dtype'])}, expected 'uint8'", **ctx)
    payload = parts[1].buffer if hasattr(parts[1], "buffer") else memoryview(parts[1])
    expected = math.prod(shape)
    if payload.nbytes != expected:
        raise BadFrame("size", f"payload {payload.nbytes} bytes, shape {shape} needs {expected}", **ctx)
    pixels = np.frombuffer(payload, np.uint8).reshape(shape)
    return Frame(FrameHeader(camera, frame_id, slot_v, t_acq, tuple(shape), epoch=epoch, trigger=trigger), pixels)
