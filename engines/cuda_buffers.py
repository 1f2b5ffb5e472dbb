"""The CUDA side of the TensorRT engine, kept in one small module: a stream, pinned host buffers,
device buffers, async copies. Uses cuda-python (``cuda.bindings.runtime``); swap this module to move to
pycuda. Imported lazily: nothing here loads on a machine without a GPU.
"""

from __future__ import annotations

import numpy as np

from engines.base import EngineError


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:  # older cuda-python layout
        from cuda import cudart  # type: ignore[no-redef]
    return cudart


def _check(result):
    """cuda-python returns (err, *values); raise on any error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        cudart = _cudart()
        _, name = cudart.cudaGetErrorName(err)
        raise EngineError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def gpu_info(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor"); raises RuntimeError without a usable GPU."""
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode().rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return name, f"{props.major}.{props.minor}"


def gpu_available() -> bool:
    try:
        return _check(_cudart().cudaGetDeviceCount()) > 0
    except Exception:  # no cuda-python, no driver, no device: all mean "no GPU here"
        return False


class PinnedBuffer:
    """Page-locked host memory viewed as a numpy array (fast, truly async copies)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        cudart = _cudart()
        self.nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.ptr = _check(cudart.cudaMallocHost(self.nbytes))
        import ctypes

        buf = (ctypes.c_byte * self.nbytes).from_address(int(self.ptr))
        self.array = np.frombuffer(buf, dtype=dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            _check(_cudart().cudaFreeHost(self.ptr))
            self.ptr = 0


class DeviceBuffer:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = _check(_cudart().cudaMalloc(nbytes))

    def free(self) -> None:
        if self.ptr:
            _check(_cudart().cudaFree(self.ptr))
            self.ptr = 0


class Event:
    """Marks a point in a stream: the end of one buffer set's batch, waited on without stalling other streams."""

    def __init__(self) -> None:
        self.cudart = _cudart()
        self.handle = _check(self.cudart.cudaEventCreateWithFlags(self.cudart.cudaEventDisableTiming))

    def record(self, stream: Stream) -> None:
        _check(self.cudart.cudaEventRecord(self.handle, stream.handle))

    def synchronize(self) -> None:
        _check(self.cudart.cudaEventSynchronize(self.handle))

    def destroy(self) -> None:
        if self.handle is not None:
            _check(self.cudart.cudaEventDestroy(self.handle))
            self.handle = None


class Stream:
    def __init__(self) -> None:
        self.cudart = _cudart()
        self.handle = _check(self.cudart.cudaStreamCreate())

    def h2d(self, dst: DeviceBuffer, src: PinnedBuffer, nbytes: int, offset: int = 0) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        _check(self.cudart.cudaMemcpyAsync(dst.ptr + offset, src.ptr + offset, nbytes, kind, self.handle))

    def d2h(self, dst: PinnedBuffer, src: DeviceBuffer, nbytes: int, offset: int = 0) -> None:
        """``nbytes`` from ``offset`` of ``src`` to the same offset of ``dst`` (one row of a batch, or all)."""
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(self.cudart.cudaMemcpyAsync(dst.ptr + offset, src.ptr + offset, nbytes, kind, self.handle))

    def wait(self, event: Event) -> None:
        """Work enqueued after this starts only when ``event`` has happened (another stream's work)."""
        _check(self.cudart.cudaStreamWaitEvent(self.handle, event.handle, 0))

    def synchronize(self) -> None:
        _check(self.cudart.cudaStreamSynchronize(self.handle))

    def destroy(self) -> None:
        if self.handle is not None:
            _check(self.cudart.cudaStreamDestroy(self.handle))
            self.handle = None


class CapturedGraph:
    """Work a ``record`` function enqueues on ``stream``, captured once (CUDA stream capture) and replayed with
    one launch: one graph per batch size and buffer set, since a graph fixes shapes and addresses."""

    def __init__(self, stream: Stream, record) -> None:
        self.cudart = _cudart()
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(self.cudart.cudaStreamBeginCapture(stream.handle, mode))
        try:
            record()
        except BaseException:
            self.cudart.cudaStreamEndCapture(stream.handle)  # leave the stream usable; the capture is dropped
            raise
        graph = _check(self.cudart.cudaStreamEndCapture(stream.handle))
        try:
            self.handle = _check(self.cudart.cudaGraphInstantiate(graph, 0))
        finally:
            _check(self.cudart.cudaGraphDestroy(graph))

    def launch(self, stream: Stream) -> None:
        _check(self.cudart.cudaGraphLaunch(self.handle, stream.handle))

    def destroy(self) -> None:
        if self.handle is not None:
            _check(self.cudart.cudaGraphExecDestroy(self.handle))
            self.handle = None
