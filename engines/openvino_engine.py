"""OpenVINO engine (CPU): the runtime anomaly-detection deployments on Intel and AMD CPUs already use.

It compiles the same ONNX graph as ONNX Runtime (docs/design.md 3.5), in float32 (``INFERENCE_PRECISION_HINT``:
a CPU with bf16 units would otherwise lower precision by itself and leave the export's parity gate behind),
with the latency hint, so one request runs a whole batch on the configured threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import Engine, EngineError
from engines.sidecar import read_onnx_sidecar


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class OpenVinoEngine(Engine):
    name = "openvino"

    def __init__(self, onnx_path: Path, threads: int | None = None, max_batch: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise EngineError("engine openvino: the openvino package is not installed (pip install openvino)") from exc
        onnx_path = Path(onnx_path)
        self.meta = read_onnx_sidecar(onnx_path)
        super().__init__(self.meta.image_size, self.meta.channels, max_batch or self.meta.max_batch)
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise EngineError(f"{onnx_path}: OpenVINO cannot compile the graph: {exc}") from exc
        self.request = self.compiled.create_infer_request()

    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        self.request.infer({"frames": frames, "roi": roi})
        scores = self.request.get_tensor("scores").data.copy()  # the request's buffers are reused next batch
        self._last_maps = self.request.get_tensor("maps").data  # valid until the next batch: maps_of copies rows
        return scores, (self._last_maps.copy() if want_maps else None)
