"""Frame wire format (docs/design.md 3.3): two ZeroMQ frames, a JSON header then the raw pixels.

``decode`` turns anything malformed into ``BadFrame`` with a ``kind`` (for counting and rate-limited
logging) and whatever camera/slot/frame_id the header still named (for the ``bad_frame`` verdict).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

WIRE_VERSION = 1
REQUIRED = ("v", "camera", "frame_id", "slot", "t_acq_ns", "shape", "dtype")


@dataclass(frozen=True)
class FrameHeader:
    camera: str
    frame_id: int
    slot: int
    t_acq_ns: int
    shape: tuple[int, ...]
    dtype: str = "uint8"
    v: int = WIRE_VERSION

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": self.v,
                "camera": self.camera,
                "frame_id": self.frame_id,
                "slot": self.slot,
                "t_acq_ns": self.t_acq_ns,
                "shape": list(self.shape),
                "dtype": self.dtype,
            },
            separators=(",", ":"),
        ).encode()


@dataclass
class Frame:
    header: FrameHeader
    pixels: np.ndarray
    t_recv_ns: int = 0


class BadFrame(ValueError):
    """A message that is not a valid frame; ``kind`` names the fault, the rest is what the header named."""

    def __init__(
        self, kind: str, detail: str, camera: str | None = None, slot: int | None = None, frame_id: int | None = None
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail
        self.camera, self.slot, self.frame_id = camera, slot, frame_id


def encode(header: FrameHeader, pixels: np.ndarray) -> list:
    """[header bytes, pixel buffer]; the buffer is the array itself (no copy) when C-contiguous."""
    if pixels.dtype != np.uint8 or tuple(pixels.shape) != tuple(header.shape):
        raise ValueError(f"pixels {pixels.dtype} {list(pixels.shape)} do not match header {list(header.shape)}")
    return [header.to_json(), np.ascontiguousarray(pixels)]


def _int(raw: dict, key: str, ctx: dict) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadFrame("field", f"{key} must be an integer, got {value!r}", **ctx)
    return value


def decode(parts: list) -> Frame:
    """ZeroMQ parts (bytes or zmq.Frame) -> Frame; raises BadFrame. Pixels are a read-only view, no copy."""
    if len(parts) != 2:
        raise BadFrame("parts", f"expected 2 message parts, got {len(parts)}")
    head = parts[0].bytes if hasattr(parts[0], "bytes") else parts[0]
    try:
        raw = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadFrame("json", f"header is not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(raw, dict):
        raise BadFrame("json", "header is not a JSON object")
    camera = raw.get("camera") if isinstance(raw.get("camera"), str) else None
    slot = raw.get("slot") if isinstance(raw.get("slot"), int) and not isinstance(raw.get("slot"), bool) else None
    fid = raw.get("frame_id") if isinstance(raw.get("frame_id"), int) else None
    ctx = {"camera": camera, "slot": slot, "frame_id": fid}
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise BadFrame("field", f"missing {', '.join(missing)}", **ctx)
    if raw["v"] != WIRE_VERSION:
        raise BadFrame("version", f"wire version {raw['v']!r}, expected {WIRE_VERSION}", **ctx)
    if camera is None or not camera:
        raise BadFrame("field", f"camera must be a non-empty string, got {raw['camera']!r}", **ctx)
    frame_id, slot_v, t_acq = _int(raw, "frame_id", ctx), _int(raw, "slot", ctx), _int(raw, "t_acq_ns", ctx)
    shape = raw["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) not in (2, 3)
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    ):
        raise BadFrame("field", f"shape must be [H, W] or [H, W, C] of positive ints, got {shape!r}", **ctx)
    if raw["dtype"] != "uint8":
        raise BadFrame("dtype", f"dtype {raw['dtype']!r}, expected 'uint8'", **ctx)
    payload = parts[1].buffer if hasattr(parts[1], "buffer") else memoryview(parts[1])
    expected = math.prod(shape)
    if payload.nbytes != expected:
        raise BadFrame("size", f"payload {payload.nbytes} bytes, shape {shape} needs {expected}", **ctx)
    pixels = np.frombuffer(payload, np.uint8).reshape(shape)
    return Frame(FrameHeader(camera, frame_id, slot_v, t_acq, tuple(shape)), pixels)
