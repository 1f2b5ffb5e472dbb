"""TensorRT runtime engine (TensorRT 10/11 API: named tensors, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3`` on its own stream). Buffers are allocated once at max batch and reused; maps are
copied back only when asked. ``tensorrt`` is imported here only, lazily.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.base import Engine, EngineError
from engines.sidecar import check_plan_matches, read_plan_sidecar


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError("TensorRT is not installed (pip install '.[gpu]' from NVIDIA's index on a GPU host)") from exc
    return trt


class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, plan: Path) -> None:
        from engines import cuda_buffers as cb

        trt = import_tensorrt()
        plan = Path(plan)
        meta = read_plan_sidecar(plan)
        try:
            gpu, capability = cb.gpu_info()
        except RuntimeError as exc:
            raise EngineError(f"{plan}: no usable GPU: {exc}") from exc
        check_plan_matches(meta, plan, trt.__version__, gpu, capability)
        self.meta = meta
        max_batch = meta.profile["max"][0]
        super().__init__(meta.image_size, meta.channels, max_batch)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise EngineError(f"{plan}: TensorRT could not deserialize the plan; rebuild it with build-engine")
        self.context = self.engine.create_execution_context()
        s, c = self.image_size, self.channels
        shapes = {
            "frames": (max_batch, s, s, c),
            "roi": (max_batch, s, s),
            "scores": (max_batch,),
            "maps": (max_batch, s, s),
        }
        self.host: dict[str, cb.PinnedBuffer] = {}
        self.device: dict[str, cb.DeviceBuffer] = {}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            self.host[name] = cb.PinnedBuffer(shapes[name], dtype)
            self.device[name] = cb.DeviceBuffer(self.host[name].nbytes)
            self.context.set_tensor_address(name, int(self.device[name].ptr))
        self.stream = cb.Stream()

    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        b = frames.shape[0]
        for name, arr in (("frames", frames), ("roi", roi)):
            self.host[name].array[:b] = arr
            self.context.set_input_shape(name, arr.shape)
            self.stream.h2d(self.device[name], self.host[name], arr.nbytes)
        if not self.context.execute_async_v3(self.stream.handle):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self.stream.d2h(self.host["scores"], self.device["scores"], b * 4)
        if want_maps:
            self.stream.d2h(self.host["maps"], self.device["maps"], b * self.image_size**2 * 4)
        self.stream.synchronize()
        scores = self.host["scores"].array[:b].copy()
        return scores, (self.host["maps"].array[:b].copy() if want_maps else None)

    def close(self) -> None:
        for buf in (*self.host.values(), *self.device.values()):
            buf.free()
        self.stream.destroy()
