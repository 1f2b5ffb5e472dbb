"""A stand-in for TensorRT 10 and the CUDA runtime that follows their interfaces, so the code around them runs
on a CPU: named I/O tensors with modes, dtypes and an optimisation profile; a context whose ``set_input_shape``
returns False outside the profile and whose ``execute_async_v3`` is enqueued on a stream; streams that run their
work only when synchronised (or an event recorded on them is), as a GPU runs it later than the call.

"Device" memory is host memory addressed by integers, as device pointers are; the network itself is the
inference graph run by ONNX Runtime, so results are checked against the real graph, not made up here.
"""

from __future__ import annotations

import importlib.machinery
import types
import weakref

import numpy as np
import onnxruntime as ort

MEMORY: dict[int, np.ndarray] = {}  # base address -> uint8 view of a live allocation
STREAMS: dict[int, FakeStream] = {}
CONTEXTS: weakref.WeakSet = weakref.WeakSet()
COPIES: list[tuple[str, int, int]] = []  # (kind, base address, nbytes) of every copy that ran


def _view(ptr: int, nbytes: int) -> np.ndarray:
    for base, mem in MEMORY.items():
        if base <= ptr and ptr + nbytes <= base + mem.nbytes:
            return mem[ptr - base : ptr - base + nbytes]
    raise RuntimeError(f"fake CUDA: address {ptr:#x} (+{nbytes}) is not allocated memory")


def _base_of(ptr: int) -> int:
    return next(b for b, m in MEMORY.items() if b <= ptr < b + m.nbytes)


# --- the CUDA side (engines/cuda_buffers.py's interface) ------------------------------------------------------
class PinnedBuffer:
    def __init__(self, shape, dtype) -> None:
        self.array = np.zeros(shape, dtype)
        self.nbytes = self.array.nbytes
        self.ptr = self.array.ctypes.data
        MEMORY[self.ptr] = self.array.reshape(-1).view(np.uint8)

    def free(self) -> None:
        MEMORY.pop(self.ptr, None)
        self.ptr = 0


class DeviceBuffer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self._mem = np.full(nbytes, 0xAB, np.uint8)  # garbage, as fresh device memory is
        self.ptr = self._mem.ctypes.data
        MEMORY[self.ptr] = self._mem

    def free(self) -> None:
        if not self.ptr:
            return
        bound = [c for c in CONTEXTS if self.ptr in c.addresses.values()]
        if bound:
            raise RuntimeError("fake CUDA: freeing device memory still bound to a live execution context")
        MEMORY.pop(self.ptr)
        self.ptr = 0


class FakeStream:
    """Work runs in order, and only when something waits for it (an event on this stream, or synchronize)."""

    def __init__(self) -> None:
        self.handle = id(self)
        self.ops: list = []  # every op ever enqueued; run ones are set to None
        self.ran = 0
        STREAMS[self.handle] = self

    @property
    def pending(self) -> int:
        return len(self.ops) - self.ran

    def _copy(self, kind: str, dst: int, src: int, nbytes: int) -> None:
        COPIES.append((kind, _base_of(src if kind == "d2h" else dst), nbytes))
        _view(dst, nbytes)[...] = _view(src, nbytes)

    def h2d(self, dst, src, nbytes: int, offset: int = 0) -> None:
        self.ops.append(lambda: self._copy("h2d", dst.ptr + offset, src.ptr + offset, nbytes))

    def d2h(self, dst, src, nbytes: int, offset: int = 0) -> None:
        self.ops.append(lambda: self._copy("d2h", dst.ptr + offset, src.ptr + offset, nbytes))

    def wait(self, event: FakeEvent) -> None:
        stream, mark = event.stream, event.mark  # the event as recorded now, not as re-recorded later
        self.ops.append(lambda: stream.run_until(mark) if stream is not None else None)

    def run_until(self, mark: int) -> None:
        while self.ran < mark:
            op, self.ops[self.ran] = self.ops[self.ran], None
            self.ran += 1
            op()

    def synchronize(self) -> None:
        self.run_until(len(self.ops))

    def destroy(self) -> None:
        if self.handle is not None:
            assert not self.pending, "fake CUDA: stream destroyed with work pending"
            STREAMS.pop(self.handle)
            self.handle = None


class FakeEvent:
    def __init__(self) -> None:
        self.handle = id(self)
        self.stream: FakeStream | None = None
        self.mark = 0

    def record(self, stream: FakeStream) -> None:
        self.stream, self.mark = stream, len(stream.ops)

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.run_until(self.mark)

    def destroy(self) -> None:
        self.handle = None


class FakeCapturedGraph:
    """Stream capture: what ``record`` enqueues is kept (not run) and enqueued again on every launch."""

    fail: str | None = None  # set to make capture fail, as on a runtime that cannot capture

    def __init__(self, stream: FakeStream, record) -> None:
        if FakeCapturedGraph.fail:
            raise RuntimeError(FakeCapturedGraph.fail)
        start = len(stream.ops)
        record()
        self.ops = stream.ops[start:]
        del stream.ops[start:]
        self.handle, self.launches = id(self), 0

    def launch(self, stream: FakeStream) -> None:
        self.launches += 1
        stream.ops.extend(self.ops)

    def destroy(self) -> None:
        self.handle, self.ops = None, []  # what it held (the context's work) is released


def patch_cuda(monkeypatch) -> None:
    """Point engines/cuda_buffers.py at the fakes."""
    from engines import cuda_buffers

    for name, value in {
        "PinnedBuffer": PinnedBuffer,
        "DeviceBuffer": DeviceBuffer,
        "Stream": FakeStream,
        "Event": FakeEvent,
        "CapturedGraph": FakeCapturedGraph,
        "gpu_info": lambda device=0: ("NVIDIA H100", "9.0"),
        "gpu_available": lambda: True,
    }.items():
        monkeypatch.setattr(cuda_buffers, name, value)
    COPIES.clear()
    FakeCapturedGraph.fail = None


# --- TensorRT 10's Python API, the parts the engine uses --------------------------------------------------------
class TensorIOMode:
    NONE, INPUT, OUTPUT = "NONE", "INPUT", "OUTPUT"


class DataType:
    UINT8, FLOAT, HALF = "UINT8", "FLOAT", "HALF"


NPTYPE = {DataType.UINT8: np.uint8, DataType.FLOAT: np.float32, DataType.HALF: np.float16}


class FakeEngine:
    """The inference graph as TensorRT would present it. ``profiles``: name -> (min, opt, max) input shapes;
    ``out_dtype``: the outputs' type (HALF: a plan whose outputs are FP16)."""

    def __init__(self, onnx_path: str, profiles: dict, out_dtype: str = DataType.FLOAT, error: float = 0.0) -> None:
        self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.profiles, self.error = profiles, error  # error: added to every output (a plan that computes wrong)
        self.dtypes = {"frames": DataType.UINT8, "roi": DataType.UINT8, "scores": out_dtype, "maps": out_dtype}
        self.names = ["frames", "roi", "scores", "maps"]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> str:
        return TensorIOMode.INPUT if name in self.profiles else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> str:
        return self.dtypes[name]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        assert profile_index == 0
        return [tuple(s) for s in self.profiles[name]]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.executions = 0
        CONTEXTS.add(self)

    def set_input_shape(self, name: str, shape) -> bool:
        lo, _, hi = self.engine.profiles[name]
        shape = tuple(shape)
        if len(shape) != len(lo) or any(not a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self.shapes[name] = shape
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if name in self.engine.profiles:
            return self.shapes.get(name, (-1,))
        frames = self.shapes.get("frames")
        if frames is None:
            return (-1,) if name == "scores" else (-1, -1, -1)
        return (frames[0],) if name == "scores" else frames[:3]

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        shapes, addresses = dict(self.shapes), dict(self.addresses)  # taken at enqueue time, as TensorRT does

        def run() -> None:
            inputs = {}
            for name in ("frames", "roi"):
                n = int(np.prod(shapes[name]))
                inputs[name] = _view(addresses[name], n).reshape(shapes[name]).copy()
            scores, maps = self.engine.session.run(["scores", "maps"], inputs)
            for name, value in (("scores", scores), ("maps", maps)):
                out = (value + self.engine.error).astype(NPTYPE[self.engine.dtypes[name]])
                _view(addresses[name], out.nbytes)[...] = out.reshape(-1).view(np.uint8)
            self.executions += 1

        STREAMS[stream_handle].ops.append(run)
        return True


class Logger:
    WARNING = "WARNING"

    def __init__(self, severity: str) -> None:
        self.severity = severity


def fake_tensorrt_module(engine_for_plan, version: str = "10.9.0") -> types.ModuleType:
    """A ``tensorrt`` module whose Runtime deserialises any plan into ``engine_for_plan(plan_bytes)``."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # find_spec() sees it installed
    trt.__version__ = version
    trt.TensorIOMode, trt.DataType, trt.Logger = TensorIOMode, DataType, Logger
    trt.nptype = lambda dtype: NPTYPE[dtype]

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, plan: bytes):
            return engine_for_plan(plan)

    trt.Runtime = Runtime
    return trt
