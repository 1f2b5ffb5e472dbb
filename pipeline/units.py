"""From frame verdicts to one decision per unit (docs/design.md 3.9). Pure: the aggregator process feeds it.

The carousel moves one pitch per encoder tick. Unit ``u`` is the one loaded at tick ``u``; the camera at station
``s`` (pitches from the load point) sees it at tick ``u + s``, so a frame triggered at tick ``k`` shows unit
``k - s``; the unit reaches the ejector at tick ``u + ejector``. A frame's ``trigger`` is the tick the camera
reports for it, never a local counter: a missed trigger leaves a hole in one unit instead of shifting every
later one.

A unit passes only when every station judged it ``pass`` once. A station that never answered, answered twice
(a repeated or doubtful trigger), or answered with any reject ejects it, with the reason. A unit is decided as
soon as every station has answered it and has since answered a later unit (so a repeated trigger cannot follow a
pass), and at the latest at its deadline: the ejector time minus ``decision_margin_ms``. A unit still incomplete
is decided one margin before that deadline, so the scheduling jitter of a loaded machine does not make its eject
late.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pipeline.config import CarouselConfig


@dataclass(frozen=True)
class Timeline:
    """The encoder: tick ``k`` happens at ``t0_ns + k * period_ns``."""

    t0_ns: int
    period_ns: int
    ejector: int
    margin_ns: int

    @classmethod
    def of(cls, c: CarouselConfig, t0_ns: int) -> Timeline:
        return cls(t0_ns, int(60e9 / c.units_per_minute), c.ejector, int(c.decision_margin_ms * 1e6))

    def tick_at(self, t_ns: int) -> int:
        return round((t_ns - self.t0_ns) / self.period_ns)

    def at_ejector_ns(self, unit: int) -> int:
        return self.t0_ns + (unit + self.ejector) * self.period_ns

    def deadline_ns(self, unit: int) -> int:
        return self.at_ejector_ns(unit) - self.margin_ns


class DeviceSequence:
    """A camera's own frame counter turned into encoder ticks (GenICam: the buffer's frame id). The first frame
    after an open is placed by its acquisition time; every later one at that tick plus the counter's advance, so
    a buffer the host lost leaves a hole (that unit misses the station) and a counter that repeats gives a doubled
    trigger (that unit's station is doubtful), instead of shifting every later unit. A counter that runs back
    (the camera was reopened) is placed by time again."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.base = 0  # tick - counter, anchored at the first frame after an open
        self.last: int | None = None

    def tick(self, seq: int, t_acq_ns: int) -> int:
        if self.last is None or seq < self.last:
            self.base = self.timeline.tick_at(t_acq_ns) - seq
        self.last = seq
        return self.base + seq

    def frame_tick(self, trigger: int | None, seq: int | None, t_acq_ns: int) -> int:
        """The one rule for a frame's tick: the source's own trigger (synthetic, replay), else the camera's
        counter (GenICam), else its acquisition time."""
        if trigger is not None:
            return trigger
        if seq is not None:
            return self.tick(seq, t_acq_ns)
        return self.timeline.tick_at(t_acq_ns)


@dataclass
class StationVerdict:
    reason: str
    score: str
    camera: str
    epoch: str
    frame_id: str
    trigger: int
    model: str = ""


@dataclass
class UnitState:
    unit: int
    seen: dict[str, list[StationVerdict]] = field(default_factory=dict)


@dataclass(frozen=True)
class UnitDecision:
    unit: int
    pocket: int
    eject: bool
    reason: str  # "pass", or "<why>:<camera>" of the first station that ejects it, or "late_decision"
    stations: dict[str, dict]
    t_deadline_ns: int
    t_decision_ns: int
    model: str

    def fields(self) -> dict[str, str]:
        """The units stream entry (docs/design.md 3.9): every value a string."""
        return {
            "unit": str(self.unit),
            "pocket": str(self.pocket),
            "decision": "eject" if self.eject else "pass",
            "reason": self.reason,
            "stations": json.dumps(self.stations, separators=(",", ":"), sort_keys=True),
            "model": self.model,
            "t_deadline_ns": str(self.t_deadline_ns),
            "t_decision_ns": str(self.t_decision_ns),
        }


class UnitAggregator:
    def __init__(self, carousel: CarouselConfig, timeline: Timeline, first_unit: int) -> None:
        self.stations = dict(carousel.stations)  # camera -> station, in the config's order
        self.pockets, self.timeline = carousel.pockets, timeline
        self.units: dict[int, UnitState] = {}
        self.latest: dict[str, int] = {}  # camera -> highest trigger answered
        self.next_unit = first_unit  # every unit from here on gets exactly one decision, in order
        self.after_decision = 0  # station verdicts that arrived for a unit already decided (counted)
        self.ignored = 0  # verdicts without a trigger, or from a camera that is not a station

    def add(self, f: dict[str, str]) -> None:
        """One frame verdict from the verdict stream."""
        camera, trigger = f.get("camera"), int(f.get("trigger", "-1"))
        if camera not in self.stations or trigger < 0:
            self.ignored += 1
            return
        unit = trigger - self.stations[camera]
        if unit < self.next_unit:
            self.after_decision += 1
            return
        sv = StationVerdict(
            f["reason"], f["score"], camera, f.get("epoch", "0"), f["frame_id"], trigger, f.get("model", "")
        )
        self.units.setdefault(unit, UnitState(unit)).seen.setdefault(camera, []).append(sv)
        self.latest[camera] = max(self.latest.get(camera, -1), trigger)

    def _complete(self, u: UnitState) -> bool:
        """Every station answered, and has since answered a later unit (no repeat of this trigger can follow)."""
        return all(
            cam in u.seen and self.latest.get(cam, -1) > u.unit + station for cam, station in self.stations.items()
        )

    def _decide(self, unit: int, now_ns: int) -> UnitDecision:
        u = self.units.pop(unit, UnitState(unit))
        stations, reason, models = {}, "pass", set()
        for cam in self.stations:
            got = u.seen.get(cam, [])
            if len(got) == 1:
                v = got[0]
                stations[cam] = {"reason": v.reason, "score": v.score, "epoch": v.epoch, "frame_id": v.frame_id}
                models.add(v.model)
                why = "pass" if v.reason == "pass" else v.reason
            else:
                stations[cam] = {"reason": "missing" if not got else "doubtful_trigger", "frames": len(got)}
                why = stations[cam]["reason"]
            if why != "pass" and reason == "pass":
                reason = f"{why}:{cam}"
        deadline = self.timeline.deadline_ns(unit)
        if now_ns > deadline and reason == "pass":
            reason = "late_decision"  # a pass the ejector may no longer act on is an eject
        model = ",".join(sorted(m for m in models if m))  # the checkpoint(s) behind the station verdicts
        return UnitDecision(unit, unit % self.pockets, reason != "pass", reason, stations, deadline, now_ns, model)

    def drain(self, now_ns: int) -> list[UnitDecision]:
        """At a stop (cameras, workers and reconciler done): decide every unit a station has answered, now."""
        last = max(self.units, default=self.next_unit - 1)
        out = [self._decide(u, now_ns) for u in range(self.next_unit, last + 1)]
        self.next_unit = last + 1
        return out

    def due(self, now_ns: int) -> list[UnitDecision]:
        """Decisions now possible, in unit order: complete units, and every unit at its deadline."""
        out = []
        while True:
            u = self.next_unit
            state = self.units.get(u)
            give_up = self.timeline.deadline_ns(u) - self.timeline.margin_ns
            if now_ns < give_up and not (state and self._complete(state)):
                break
            out.append(self._decide(u, now_ns))
            self.next_unit += 1
        return out
