"""Audit one line's Redis: does every frame the ledger says was sent have exactly one verdict? (docs/design.md 3.8)

Reads the ledger and verdict streams whole; meant for tests, the chaos run and an engineer checking a shift.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import redis

from model.errors import InputError
from pipeline.line_keys import LineKeys

Identity = tuple[str, int, int]  # camera, epoch, frame_id


def _entries(client: redis.Redis, key: str) -> list[dict[str, str]]:
    out, start = [], "-"
    while True:
        batch = client.xrange(key, min=start, count=10_000)
        out += [{k.decode(): v.decode() for k, v in f.items()} for _, f in batch]
        if len(batch) < 10_000:
            return out
        last = batch[-1][0].decode()
        ms, seq = last.split("-")
        start = f"{ms}-{int(seq) + 1}"


def _identity(e: dict[str, str]) -> Identity:
    return e["camera"], int(e.get("epoch", 0)), int(e["frame_id"])


def audit(client: redis.Redis, stream: str) -> dict:
    """Counts and the exceptions to the rule, each a list of identities (empty when the line kept its promise)."""
    keys = LineKeys(stream)
    sent = _entries(client, keys.ledger)
    verdicts = _entries(client, stream)
    sent_ids = {_identity(e) for e in sent}
    seen = Counter(_identity(v) for v in verdicts)
    reasons = Counter(v["reason"] for v in verdicts)
    epochs: dict[str, dict[int, list[int]]] = {}
    for cam, epoch, fid in sorted(sent_ids):
        epochs.setdefault(cam, {}).setdefault(epoch, []).append(fid)
    reused = []
    for cam, by_epoch in epochs.items():
        ordered = sorted(by_epoch.items())  # epochs are start times: in start order
        for (_, before), (epoch, after) in zip(ordered, ordered[1:], strict=False):
            if min(after) <= max(before):
                reused.append((cam, epoch, min(after)))
    judged = [v for v in verdicts if v["reason"] in ("pass", "anomaly")]
    return {
        "sent": len(sent),
        "sent_by_camera": dict(sorted(Counter(e["camera"] for e in sent).items())),
        "verdicts": len(verdicts),
        "by_reason": dict(sorted(reasons.items())),
        "missing": sorted(sent_ids - set(seen)),
        "duplicates": sorted(i for i, n in seen.items() if n > 1),
        "unledgered": sorted(set(seen) - sent_ids),
        "pass_without_inference": [
            _identity(v) for v in judged if v["reason"] == "pass" and math.isnan(float(v["score"]))
        ],
        "failed_with_a_score": [
            _identity(v)
            for v in verdicts
            if v["reason"] not in ("pass", "anomaly") and not math.isnan(float(v["score"]))
        ],
        "epochs_by_camera": {cam: len(by_epoch) for cam, by_epoch in sorted(epochs.items())},
        "frame_ids_reused_after_restart": reused,
    }


def promise_kept(report: dict) -> bool:
    return (
        not any(
            report[k]
            for k in (
                "missing",
                "duplicates",
                "unledgered",
                "pass_without_inference",
                "failed_with_a_score",
                "frame_ids_reused_after_restart",
            )
        )
        and report["sent"] == report["verdicts"]
    )


def units_summary(client: redis.Redis, units_stream: str, run: int) -> dict:
    """What the ejector was told for one run: units, pass, eject by reason, decisions after their deadline."""
    units = [d for d in _entries(client, units_stream) if d.get("run") == str(run)]
    ejects = Counter(d["reason"] for d in units if d["decision"] == "eject")
    return {
        "units": len(units),
        "pass": sum(d["decision"] == "pass" for d in units),
        "eject": sum(ejects.values()),
        "eject_reasons": dict(sorted(ejects.items())),
        "decided_after_deadline": sum(int(d["t_decision_ns"]) > int(d["t_deadline_ns"]) for d in units),
    }


def audit_units(client: redis.Redis, stream: str, carousel) -> dict:
    """Units against the ledger's ground truth (which triggers each camera really sent, and how often): every
    unit a missed or doubled trigger touched must be ejected with that reason at that station, no other unit
    may carry a slot reason, and no unit may pass unless every station passed it."""
    sent: Counter[tuple[str, int]] = Counter()
    for e in _entries(client, LineKeys(stream).ledger):
        if "trigger" in e:
            sent[(e["camera"], int(e["trigger"]))] += 1
    units = {int(d["unit"]): d for d in _entries(client, carousel.stream)}
    faults = faults_ejected = wrong_slot_reason = passed_unjudged = 0
    for u, d in units.items():
        stations = json.loads(d["stations"])
        for cam, pos in carousel.stations.items():
            n = sent[(cam, u + pos)]
            want = "missing" if n == 0 else "doubtful_trigger" if n > 1 else None
            got = stations[cam]["reason"]
            if want:
                faults += 1
                faults_ejected += got == want and d["decision"] == "eject"
            elif got in ("missing", "doubtful_trigger"):
                wrong_slot_reason += 1
        if d["decision"] == "pass" and any(s["reason"] != "pass" for s in stations.values()):
            passed_unjudged += 1
    last = max(units, default=-1)
    return {
        "units": len(units),
        "units_without_decision": sorted(set(range(last + 1)) - set(units)),
        "slot_faults": faults,
        "slot_faults_ejected_with_reason": faults_ejected,
        "unaffected_ejected_for_slot_errors": wrong_slot_reason,
        "passed_without_every_station": passed_unjudged,
    }


def trace_unit(client: redis.Redis, verdict_stream: str, units_stream: str, unit: int, run: int | None = None) -> dict:
    """Everything the line holds on one unit (docs/design.md 3.9): its decision, and for every station the frame
    verdict behind it (camera, epoch, frame id, score, threshold, model, reject overlay). ``run`` defaults to
    the newest run that decided the unit."""
    decisions = [
        d for d in _entries(client, units_stream) if d["unit"] == str(unit) and (run is None or d["run"] == str(run))
    ]
    if not decisions:
        raise InputError(f"{units_stream}: no decision for unit {unit}" + (f" in run {run}" if run else ""))
    d = decisions[-1]
    stations = json.loads(d["stations"])
    # the station frames were written around the unit's ejector time: search a window of the stream, not all of it
    t_end_ms = int(d["t_deadline_ns"]) // 1_000_000 + 60_000
    t_start_ms = max(0, int(d["run"]) // 1_000_000 - 1)
    window = client.xrange(verdict_stream, min=f"{t_start_ms}-0", max=f"{t_end_ms}-0")
    frames = {}
    for cam, st in stations.items():
        if "frame_id" not in st:
            frames[cam] = None
            continue
        want = (cam, st["epoch"], st["frame_id"])
        for entry_id, raw in window:
            f = {k.decode(): v.decode() for k, v in raw.items()}
            if (f["camera"], f.get("epoch", "0"), f["frame_id"]) == want:
                frames[cam] = {"entry": entry_id.decode(), **f}
                break
        else:
            frames[cam] = None
    return {"decision": d, "stations": stations, "frames": frames}
