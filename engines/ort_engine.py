"""ONNX Runtime engine: CPU provider (CUDA provider first when this onnxruntime has it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import Engine, EngineError
from engines.sidecar import read_onnx_sidecar


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int | None = None, max_batch: int | None = None) -> None:
        import onnxruntime as ort

        onnx_path = Path(onnx_path)
        self.meta = read_onnx_sidecar(onnx_path)
        super().__init__(self.meta.image_size, self.meta.channels, max_batch or self.meta.max_batch)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EngineError(f"{onnx_path}: ONNX Runtime cannot load the graph: {exc}") from exc
        self.providers = self.session.get_providers()

    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        scores, self._last_maps = self.session.run(["scores", "maps"], {"frames": frames, "roi": roi})
        return scores, (self._last_maps if want_maps else None)
