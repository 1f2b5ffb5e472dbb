"""Verdicts (docs/design.md 3.7): one per frame, fail-safe. Pure: the worker decides, the publisher writes."""

from __future__ import annotations

from dataclasses import dataclass

REASONS = ("pass", "anomaly", "late", "bad_frame", "engine_error", "overload", "unknown_camera", "lost")
# every stream entry has these fields (docs/design.md 3.7); rejects may add "map"
VERDICT_FIELDS = (
    "camera",
    "epoch",
    "frame_id",
    "slot",
    "t_acq_ns",
    "t_verdict_ns",
    "score",
    "threshold",
    "reject",
    "reason",
    "model",
)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    camera: str
    frame_id: int
    slot: int
    t_acq_ns: int
    t_verdict_ns: int
    score: float
    threshold: float
    reason: str
    model: str
    map_path: str | None = None
    epoch: int = 0  # with camera and frame_id, the frame's identity (the camera process's start)
    claim: bool = True  # written once per identity (line_keys); False for messages the ledger cannot know
    trigger: int = -1  # the encoder tick of the frame on a carousel line (-1: none)

    @property
    def reject(self) -> bool:
        return self.reason != "pass"

    def fields(self) -> dict[str, str]:
        """The stream entry: every value a string, as the carousel tracker reads them."""
        out = {
            "camera": self.camera,
            "epoch": str(self.epoch),
            "frame_id": str(self.frame_id),
            "slot": str(self.slot),
            "t_acq_ns": str(self.t_acq_ns),
            "t_verdict_ns": str(self.t_verdict_ns),
            "score": "nan" if self.score != self.score else f"{self.score:.6f}",
            "threshold": f"{self.threshold:.6f}",
            "reject": "1" if self.reject else "0",
            "reason": self.reason,
            "model": self.model,
        }
        if self.trigger >= 0:
            out["trigger"] = str(self.trigger)
        if self.map_path:
            out["map"] = self.map_path
        return out


def judge(score: float, threshold: float) -> str:
    """Reject when the score is above the threshold, and whenever the score is not a number (fail-safe)."""
    if not score == score or score > threshold:  # NaN compares false: reject it
        return "anomaly"
    return "pass"


def failed(
    *,
    reason: str,
    camera: str,
    frame_id: int,
    slot: int,
    t_acq_ns: int,
    now_ns: int,
    threshold: float,
    model: str,
    epoch: int = 0,
    claim: bool = True,
    trigger: int = -1,
) -> Verdict:
    """A frame that could not be judged: a reject with its reason, never a pass, never silence."""
    if reason not in REASONS or reason in ("pass", "anomaly"):
        raise ValueError(f"not a failure reason: {reason!r}")
    return Verdict(
        camera=camera,
        frame_id=frame_id,
        slot=slot,
        t_acq_ns=t_acq_ns,
        t_verdict_ns=now_ns,
        score=float("nan"),
        threshold=threshold,
        reason=reason,
        model=model,
        epoch=epoch,
        claim=claim,
        trigger=trigger,
    )
