"""Per-stage latency of the line from the worker's timing log (``worker.timing_log``): pure summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STAGES = {  # name: (from, to)
    "send": ("t_acq", "t_sent"),  # camera stamp -> handed to ZeroMQ (header, send call)
    "transport": ("t_sent", "t_recv"),  # ZeroMQ -> the worker reads it (includes waiting while it infers)
    "queue": ("t_recv", "t_batch"),  # received -> its batch starts (batching wait, earlier batches)
    "engine": ("t_batch", "t_engine"),  # batch start -> inference done (preprocess stack + engine)
    "write": ("t_engine", "t_written"),  # inference done -> verdicts written to Redis
    "end_to_end": ("t_acq", "t_written"),
}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_timing(folder: Path) -> list[dict]:
    """Worker rows (frames that were inferred) joined with their camera's send time by (camera, frame_id)."""
    folder = Path(folder)
    sent = {}
    for p in folder.glob("camera-*.jsonl"):
        for r in _jsonl(p):
            sent[(r["camera"], r["frame_id"])] = r["t_sent"]
    rows = []
    for p in folder.glob("worker-*.jsonl"):
        for r in _jsonl(p):
            r["t_sent"] = sent.get((r["camera"], r["frame_id"]), r["t_acq"])
            rows.append(r)
    return rows


def percentiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(values.max())}


def summarise(rows: list[dict]) -> dict:
    """Stage percentiles in ms, the batch-size histogram, and the overhead: end-to-end p99 minus engine p99."""
    out: dict = {"frames": len(rows), "stages_ms": {}}
    for name, (a, b) in STAGES.items():
        out["stages_ms"][name] = percentiles(np.array([(r[b] - r[a]) / 1e6 for r in rows]))
    sizes: dict[int, int] = {}
    for r in rows:
        sizes[r["batch"]] = sizes.get(r["batch"], 0) + 1
    out["batch_histogram"] = {str(k): v for k, v in sorted(sizes.items())}
    st = out["stages_ms"]
    out["overhead_p99_ms"] = st["end_to_end"]["p99"] - st["engine"]["p99"]
    # per frame: everything but its own batch's inference (transport, waiting, write)
    out["overhead_ms"] = percentiles(
        np.array([((r["t_written"] - r["t_acq"]) - (r["t_engine"] - r["t_batch"])) / 1e6 for r in rows])
    )
    return out
