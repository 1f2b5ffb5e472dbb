"""What the live line page shows (docs/design.md 3.10), as pure state fed from the line's Redis streams: frames
sent per camera (the ledger), verdicts, unit decisions and the workers' status hashes. No sockets, no clocks:
the page process feeds it and asks for a snapshot with its own ``now``."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np

from pipeline.config import PageConfig

TROUBLE = ("late", "overload", "lost", "engine_error", "bad_frame", "unknown_camera")  # rejects not about product
RATE_WINDOW_S = 5.0  # frames/s and verdicts/s: over the last few seconds


class SlidingCounts:
    """Counts by key over the last ``window_s`` seconds, in one-second buckets with a running total."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.buckets: deque[tuple[int, Counter]] = deque()
        self.total: Counter = Counter()

    def add(self, t_s: float, key: str) -> None:
        sec = int(t_s)
        if not self.buckets or self.buckets[-1][0] < sec:
            self.buckets.append((sec, Counter()))
            bucket = self.buckets[-1][1]
        else:  # late arrival (another host's clock, a buffered verdict): into the newest bucket it fits
            bucket = next((c for s, c in reversed(self.buckets) if s <= sec), self.buckets[0][1])
        bucket[key] += 1
        self.total[key] += 1

    def expire(self, now_s: float) -> Counter:
        while self.buckets and self.buckets[0][0] + 1 <= now_s - self.window_s:  # wholly before the window
            self.total.subtract(self.buckets.popleft()[1])
        self.total = +self.total  # drop zero counts
        return self.total


@dataclass
class CameraView:
    name: str
    minute: SlidingCounts = field(default_factory=lambda: SlidingCounts(60))
    hour: SlidingCounts = field(default_factory=lambda: SlidingCounts(3600))
    recent_verdicts: SlidingCounts = field(default_factory=lambda: SlidingCounts(RATE_WINDOW_S))
    recent_sent: SlidingCounts = field(default_factory=lambda: SlidingCounts(RATE_WINDOW_S))
    latencies: deque = field(default_factory=deque)  # (t_s, ms) over the last minute
    consecutive_rejects: int = 0
    last_sent_s: float | None = None
    last_verdict_s: float | None = None
    first_seen_s: float | None = None


def _share(counts: Counter) -> float | None:
    n = sum(counts.values())
    return None if n == 0 else (n - counts.get("pass", 0)) / n


class LineView:
    def __init__(self, cameras: list[str], workers: int, page: PageConfig, started_s: float) -> None:
        self.page, self.started_s = page, started_s
        self.cameras = {name: CameraView(name) for name in cameras}
        self.workers: list[dict[str, str] | None] = [None] * workers
        self.gallery: deque[dict[str, str]] = deque(maxlen=page.gallery)
        self.units_minute = SlidingCounts(60)
        self.redis_up, self.redis_error, self.redis_down_since = True, "", None
        self.model, self.threshold = "", ""
        self.seq = 0

    def _camera(self, name: str) -> CameraView | None:
        return self.cameras.get(name)  # names outside the config are the workers' unknown_camera rejects

    def add_sent(self, f: dict[str, str]) -> None:
        """A ledger entry: the camera sent this frame (t_acq_ns is its acquisition)."""
        cam = self._camera(f.get("camera", ""))
        if cam is None:
            return
        t = int(f.get("t_acq_ns", "0")) / 1e9
        cam.recent_sent.add(t, "sent")
        cam.last_sent_s = max(cam.last_sent_s or 0.0, t)
        cam.first_seen_s = cam.first_seen_s or t

    def add_verdict(self, f: dict[str, str]) -> None:
        t = int(f.get("t_verdict_ns", "0")) / 1e9
        self.model, self.threshold = f.get("model", self.model), f.get("threshold", self.threshold)
        reason = f.get("reason", "?")
        if reason != "pass":
            entry = dict(f)
            if f.get("map"):
                entry["image"] = f"/rejects/{PurePath(f['map']).name}"
            self.gallery.appendleft(entry)
        cam = self._camera(f.get("camera", ""))
        if cam is None:
            return
        for window in (cam.minute, cam.hour, cam.recent_verdicts):
            window.add(t, reason)
        cam.last_verdict_s = max(cam.last_verdict_s or 0.0, t)
        cam.first_seen_s = cam.first_seen_s or t
        cam.consecutive_rejects = 0 if reason == "pass" else cam.consecutive_rejects + 1
        t_acq = int(f.get("t_acq_ns", "0"))
        if t_acq > 0:
            cam.latencies.append((t, (int(f["t_verdict_ns"]) - t_acq) / 1e6))

    def add_unit(self, f: dict[str, str]) -> None:
        key = "pass" if f.get("decision") == "pass" else f"eject {f.get('reason', '?')}"
        self.units_minute.add(int(f.get("t_decision_ns", "0")) / 1e9, key)

    def set_redis(self, up: bool, error: str, now_s: float) -> None:
        if up:
            self.redis_down_since = None
        elif self.redis_up:
            self.redis_down_since = now_s
        self.redis_up, self.redis_error = up, error

    def set_worker(self, index: int, status: dict[str, str] | None) -> None:
        self.workers[index] = status

    def _camera_row(self, cam: CameraView, now_s: float) -> dict:
        minute, hour = cam.minute.expire(now_s), cam.hour.expire(now_s)
        while cam.latencies and cam.latencies[0][0] <= now_s - 60:
            cam.latencies.popleft()
        span = min(RATE_WINDOW_S, max(now_s - (cam.first_seen_s or now_s), 1.0))
        lat = np.array([ms for _, ms in cam.latencies])
        return {
            "camera": cam.name,
            "frames_per_s": round(sum(cam.recent_sent.expire(now_s).values()) / span, 2),
            "verdicts_per_s": round(sum(cam.recent_verdicts.expire(now_s).values()) / span, 2),
            "verdicts_minute": sum(minute.values()),
            "reject_share_minute": _share(minute),
            "reject_share_hour": _share(hour),
            "reasons_minute": dict(sorted(minute.items())),
            "reasons_hour": dict(sorted(hour.items())),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
            "latency_p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
            "consecutive_rejects": cam.consecutive_rejects,
            "last_frame_age_s": None if cam.last_sent_s is None else round(now_s - cam.last_sent_s, 1),
            "last_verdict_age_s": None if cam.last_verdict_s is None else round(now_s - cam.last_verdict_s, 1),
        }

    def _alarms(self, rows: list[dict], now_s: float) -> list[dict[str, str]]:
        p, out = self.page, []
        if not self.redis_up:
            since = now_s - (self.redis_down_since or now_s)
            out.append(
                {"kind": "redis", "text": f"Redis unreachable for {since:.0f} s: verdicts wait in the workers' buffers"}
            )
            return out  # nothing else can be read while it is away
        for r in rows:
            cam, age = r["camera"], r["last_frame_age_s"]
            if age is None:
                age = r["last_verdict_age_s"]
            if age is not None and age > p.camera_stale_s:
                out.append({"kind": "camera_stopped", "camera": cam, "text": f"{cam}: no frame for {age:.0f} s"})
            elif age is None and now_s - self.started_s > 10 * p.camera_stale_s:
                out.append({"kind": "camera_stopped", "camera": cam, "text": f"{cam}: no frame since the page started"})
            share = r["reject_share_minute"]
            if share is not None and r["verdicts_minute"] >= p.min_verdicts and share > p.reject_rate_limit:
                out.append(
                    {
                        "kind": "reject_rate",
                        "camera": cam,
                        "text": f"{cam}: {share:.0%} rejected over the last minute (limit {p.reject_rate_limit:.0%})",
                    }
                )
            if r["consecutive_rejects"] >= p.consecutive_rejects:
                out.append(
                    {
                        "kind": "consecutive",
                        "camera": cam,
                        "text": f"{cam}: {r['consecutive_rejects']} rejects in a row",
                    }
                )
            trouble = {k: v for k, v in r["reasons_minute"].items() if k in TROUBLE}
            if trouble:
                what = ", ".join(f"{v} {k}" for k, v in sorted(trouble.items()))
                out.append({"kind": "line_rejects", "camera": cam, "text": f"{cam}: {what} in the last minute"})
        for i, w in enumerate(self.workers):
            if w is None:
                out.append({"kind": "worker", "text": f"worker {i}: no status (stopped, starting or restarting)"})
        return out

    def snapshot(self, now_s: float) -> dict:
        """Everything the page draws, JSON-ready."""
        self.seq += 1
        rows = [self._camera_row(c, now_s) for c in self.cameras.values()]
        units = self.units_minute.expire(now_s)
        status = next((w for w in self.workers if w), {})  # before the first verdict: what the workers loaded
        return {
            "seq": self.seq,
            "now_s": now_s,
            "uptime_s": round(now_s - self.started_s, 1),
            "redis": {"up": self.redis_up, "error": self.redis_error},
            "model": self.model or status.get("model", ""),
            "threshold": self.threshold or status.get("threshold", ""),
            "cameras": rows,
            "workers": [dict(w, index=str(i)) if w else {"index": str(i)} for i, w in enumerate(self.workers)],
            "units_minute": dict(sorted(units.items())),
            "alarms": self._alarms(rows, now_s),
            "gallery": list(self.gallery),
            "verdicts_minute": sum(r["verdicts_minute"] for r in rows),
        }
