"""The ejector side of the carousel, simulated the way a tracker reads the units stream (``XREADGROUP`` in a
consumer group, ``XACK`` after acting): at each unit's ejector time it acts on the decision it holds, and a unit
that arrives without one is counted undecided (a real tracker ejects it)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import redis

from pipeline.units import Timeline


class EjectorSim:
    def __init__(self, client: redis.Redis, stream: str, timeline: Timeline, first_unit: int = 0) -> None:
        self.client, self.stream, self.timeline = client, stream, timeline
        self.group, self.consumer = "ejector", "sim"
        try:
            client.xgroup_create(stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.decisions: dict[int, dict[str, str]] = {}
        self.next_unit = first_unit
        self.counts: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.slack_ms: list[float] = []
        self.unjudged_passes = 0  # passed units a station did not judge: must stay 0
        self.undecided_units: list[int] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _read(self) -> None:
        resp = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=1000, block=10)
        ids = []
        for _, entries in resp or []:
            for entry_id, raw in entries:
                f = {k.decode(): v.decode() for k, v in raw.items()}
                self.decisions[int(f["unit"])] = f
                ids.append(entry_id)
        if ids:
            self.client.xack(self.stream, self.group, *ids)

    def _arrive(self, unit: int) -> None:
        d = self.decisions.pop(unit, None)
        if d is None:
            self.counts["undecided"] += 1
            self.undecided_units.append(unit)
            return
        self.counts[d["decision"]] += 1
        self.reasons[d["reason"]] += 1
        self.slack_ms.append((self.timeline.at_ejector_ns(unit) - int(d["t_decision_ns"])) / 1e6)
        if d["decision"] == "pass":
            stations = json.loads(d["stations"])
            if any(s.get("reason") != "pass" for s in stations.values()):
                self.unjudged_passes += 1

    def step(self, now_ns: int) -> None:
        self._read()
        while self.timeline.at_ejector_ns(self.next_unit) <= now_ns:
            self._arrive(self.next_unit)
            self.next_unit += 1

    def finish(self, last_unit: int) -> None:
        """The line stopped, and the carousel with it: the units still on it reach the ejector after the stop, with
        whatever the aggregator decided for them at its drain (no slack: the carousel did not move meanwhile)."""
        self._read()
        slack = list(self.slack_ms)
        while self.next_unit <= last_unit:
            self._arrive(self.next_unit)
            self.next_unit += 1
        self.slack_ms = slack

    def run(self, until_unit: int | None = None) -> None:
        while not self.stop.is_set() and (until_unit is None or self.next_unit <= until_unit):
            self.step(time.time_ns())
            time.sleep(0.005)

    def start(self, until_unit: int | None = None) -> EjectorSim:
        self.thread = threading.Thread(target=self.run, args=(until_unit,), name="ejector-sim", daemon=True)
        self.thread.start()
        return self

    def summary(self) -> dict:
        slack = np.array(self.slack_ms) if self.slack_ms else np.array([np.nan])
        return {
            "units": sum(self.counts.values()),
            **{k: self.counts.get(k, 0) for k in ("pass", "eject", "undecided")},
            "eject_reasons": dict(sorted((k, v) for k, v in self.reasons.items() if k != "pass")),
            "decision_slack_ms": {"p1": float(np.percentile(slack, 1)), "p50": float(np.median(slack))},
            "passed_without_every_station": self.unjudged_passes,
        }
