"""Reading the verdict stream back: live counts and the end-of-run summary (latency from acquisition)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import redis

from pipeline.timing import percentiles


def last_id(client: redis.Redis, stream: str) -> str:
    """The newest entry id, so a run counts only its own verdicts."""
    entries = client.xrevrange(stream, count=1)
    return entries[0][0].decode() if entries else "0-0"


@dataclass
class StreamStats:
    verdicts: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    by_camera: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    keys: set[tuple[str, str, str]] = field(default_factory=set)
    duplicates: int = 0
    t_first_ns: int | None = None
    t_last_ns: int | None = None

    def add(self, fields: dict[bytes, bytes]) -> None:
        f = {k.decode(): v.decode() for k, v in fields.items()}
        key = (f["camera"], f.get("epoch", "0"), f["frame_id"])  # a frame's identity (docs/design.md 3.7)
        if key in self.keys:
            self.duplicates += 1
            return
        self.keys.add(key)
        self.verdicts += 1
        self.by_reason[f["reason"]] = self.by_reason.get(f["reason"], 0) + 1
        self.by_camera[f["camera"]] = self.by_camera.get(f["camera"], 0) + 1
        t_acq, t_v = int(f["t_acq_ns"]), int(f["t_verdict_ns"])
        if t_acq > 0:
            self.latencies_ms.append((t_v - t_acq) / 1e6)
            self.t_first_ns = t_acq if self.t_first_ns is None else min(self.t_first_ns, t_acq)
        self.t_last_ns = t_v if self.t_last_ns is None else max(self.t_last_ns, t_v)

    def read(self, client: redis.Redis, stream: str, after: str, block_ms: int = 200) -> str:
        """XREAD what came after ``after``; returns the new position."""
        resp = client.xread({stream: after}, count=1000, block=block_ms)
        for _, entries in resp or []:
            for entry_id, fields in entries:
                self.add(fields)
                after = entry_id.decode()
        return after

    def summary(self) -> dict:
        span_s = ((self.t_last_ns - self.t_first_ns) / 1e9) if self.t_first_ns and self.t_last_ns else float("nan")
        return {
            "verdicts": self.verdicts,
            "by_reason": dict(sorted(self.by_reason.items())),
            "by_camera": dict(sorted(self.by_camera.items())),
            "duplicates": self.duplicates,
            "throughput_fps": self.verdicts / span_s if span_s and span_s > 0 else float("nan"),
            "latency_ms": percentiles(np.array(self.latencies_ms)),
        }
