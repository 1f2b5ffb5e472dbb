"""Per-stage latency of the line from the worker's timing log (``worker.timing_log``): pure summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STAGES = {  # name: (from, to)
    "transport": ("t_acq", "t_recv"),  # camera stamp -> worker received (ZeroMQ, decode)
    "queue": ("t_recv", "t_batch"),  # received -> its batch starts (batching wait, earlier batches)
    "engine": ("t_batch", "t_engine"),  # batch start -> inference done (preprocess stack + engine)
    "write": ("t_engine", "t_written"),  # inference done -> verdicts written to Redis
    "end_to_end": ("t_acq", "t_written"),
}


def read_timing(path: Path) -> list[dict]:
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.is_file() else []


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
