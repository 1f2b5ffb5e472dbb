"""OpenVINO engine (CPU): the runtime anomaly-detection deployments on Intel and AMD CPUs already use.

It compiles the same ONNX graph as ONNX Runtime (docs/design.md 3.5), in float32 (``INFERENCE_PRECISION_HINT``:
a CPU with bf16 units would otherwise lower precision by itself and leave the export's parity gate behind).

A batch of two or more frames runs as ``streams`` requests at once, each on its share of the threads (the
throughput hint with ``NUM_STREAMS``), a single frame on one request over all threads (the latency hint). With
one request over every thread, each layer ends on a barrier across the threads, so one thread preempted by the
line's other processes (cameras, Redis, ZeroMQ on the same cores) stalls the whole batch; streams do not wait
for each other (2 cores, batch 4, 5 interleaved rounds on 2026-12-08: INT8 45.5-50.2 frames/s against
31.6-48.0 with one request, FP32 20.5-21.9 against 16.7-21.8; docs/results.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.base import Engine, EngineError
from engines.sidecar import read_onnx_sidecar


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def default_streams(threads: int | None, max_batch: int) -> int:
    """2 where there are two threads and a batch to split between them, else 1 (one request, latency hint)."""
    available = threads or os.cpu_count() or 1
    return 2 if available >= 2 and max_batch >= 2 else 1


def chunks(b: int, streams: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` that split a batch of ``b`` over at most ``streams`` requests, the larger
    chunks first (batch 3 over 2: rows 0-1 and 2)."""
    n = min(b, streams)
    bounds = [(b * i + n - 1) // n for i in range(n + 1)]  # ceil-split: never an empty chunk, larger ones first
    return [(bounds[i], bounds[i + 1]) for i in range(n)]


class OpenVinoEngine(Engine):
    name = "openvino"

    def __init__(
        self, onnx_path: Path, threads: int | None = None, max_batch: int | None = None, streams: int | None = None
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise EngineError("engine openvino: the openvino package is not installed (pip install openvino)") from exc
        onnx_path = Path(onnx_path)
        self.meta = read_onnx_sidecar(onnx_path)
        super().__init__(self.meta.image_size, self.meta.channels, max_batch or self.meta.max_batch)
        self.streams = streams or default_streams(threads, self.max_batch)
        base = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        try:
            core = ov.Core()
            model = core.read_model(str(onnx_path))
            self.compiled = core.compile_model(model, "CPU", {**base, "PERFORMANCE_HINT": "LATENCY"})
            self.request = self.compiled.create_infer_request()
            self.parallel = []
            if self.streams > 1:
                config = {**base, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": self.streams}
                compiled = core.compile_model(model, "CPU", config)
                self.parallel = [compiled.create_infer_request() for _ in range(self.streams)]
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise EngineError(f"{onnx_path}: OpenVINO cannot compile the graph: {exc}") from exc
        self._last_parts: list[tuple[int, int, object]] = []

    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        b = frames.shape[0]
        if b == 1 or not self.parallel:
            self.request.infer({"frames": frames, "roi": roi}, share_inputs=True)
            self._last_parts = [(0, b, self.request)]
        else:
            self._last_parts = [(a, z, r) for (a, z), r in zip(chunks(b, self.streams), self.parallel, strict=False)]
            for a, z, request in self._last_parts:  # rows of a C-contiguous batch: shared, not copied, until wait()
                request.start_async({"frames": frames[a:z], "roi": roi[a:z]}, share_inputs=True)
            for _, _, request in self._last_parts:
                request.wait()
        # the requests' output buffers are reused next batch: scores are copied now, maps only when wanted
        scores = np.concatenate([r.get_tensor("scores").data for _, _, r in self._last_parts])
        return scores, (self._maps(list(range(b))) if want_maps else None)

    def _maps(self, rows: list[int]) -> np.ndarray:
        """Copies of the given rows' maps, each from the request that ran it (its output tensor looked up once)."""
        parts = [(a, z, request.get_tensor("maps").data) for a, z, request in self._last_parts]
        out = np.empty((len(rows), self.image_size, self.image_size), np.float32)
        for i, row in enumerate(rows):
            part = next(((a, maps) for a, z, maps in parts if a <= row < z), None)
            if part is None:
                raise IndexError(f"{self.name}: row {row} not in the last batch")
            out[i] = part[1][row - part[0]]
        return out

    def maps_of(self, rows: list[int]) -> np.ndarray:
        """The maps of the given rows of the last batch, gathered from the requests that ran them."""
        if not self._last_parts:
            raise RuntimeError(f"{self.name}: no batch has run yet")
        return self._maps(list(rows))

    def describe(self) -> str:
        return super().describe() + (f", {self.streams} streams" if self.parallel else "")
