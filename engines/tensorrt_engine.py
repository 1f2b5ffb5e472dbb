"""TensorRT runtime engine (TensorRT 10/11 API: named tensors, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``). ``tensorrt`` is imported here only, lazily.

Everything about the tensors comes from the engine itself (``get_tensor_mode``, ``get_tensor_dtype``, profile 0's
max shape for inputs, the context's inferred shapes for outputs), so a plan built with another max batch or
output precision is sized right. Two or more buffer sets (pinned host and device buffers, a copy stream, events)
feed one execution context on one compute stream: ``submit`` enqueues a batch's H2D on its set's copy stream,
the execution on the compute stream after that copy's event, and the scores' D2H back on the copy stream after
the execution's event, then returns; so the copies of batch n+1 overlap the compute of batch n, and ``collect``
waits on that batch's done-event only. One context serves every set (TensorRT captures tensor addresses and
shapes at enqueue), so nothing depends on contexts sharing an optimisation profile. Where the runtime allows, the
execution is one CUDA graph per buffer set and padded batch size, captured at start (a batch is padded up to
the next power of two or the max, with nothing inspected in the padding); where capture fails, plain enqueues and
``graph_error`` says why. Maps stay on the GPU unless asked for; ``maps_of`` copies back only the rows a caller
needs (rejects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.base import Engine, EngineError, captured_sizes, copy_unless_staged, padded_size
from engines.sidecar import check_plan_matches, read_plan_sidecar

INPUTS, OUTPUTS = ("frames", "roi"), ("scores", "maps")


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineError("TensorRT is not installed (pip install '.[gpu]' from NVIDIA's index on a GPU host)") from exc
    return trt


@dataclass(frozen=True)
class TensorSpec:
    """One I/O tensor of the engine at the largest batch its profile allows."""

    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: tuple[int, ...]

    @property
    def row_bytes(self) -> int:
        """Bytes of one frame's slice (the batch axis is the first)."""
        return int(np.prod(self.max_shape[1:], dtype=np.int64)) * self.dtype.itemsize


def discover_io(trt, engine, context) -> dict[str, TensorSpec]:
    """The engine's I/O tensors as it declares them. Inputs take profile 0's max shape; outputs the shape the
    context infers for those inputs. Refuses a plan that is not the inference graph (docs/design.md 3.5)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    modes = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
    missing = [n for n in INPUTS if not modes.get(n, False)] + [n for n in OUTPUTS if modes.get(n, True)]
    if missing or len(names) != len(INPUTS) + len(OUTPUTS):
        raise EngineError(
            f"plan I/O is {sorted(names)}: expected inputs {list(INPUTS)} and outputs {list(OUTPUTS)}; "
            "build it from run_line.py export's graph"
        )
    shapes = {}
    for name in INPUTS:
        shapes[name] = tuple(int(d) for d in engine.get_tensor_profile_shape(name, 0)[2])
        set_shape(context, name, shapes[name])
    for name in OUTPUTS:
        shapes[name] = tuple(int(d) for d in context.get_tensor_shape(name))
        if any(d < 0 for d in shapes[name]):
            raise EngineError(f"plan output {name}: shape {shapes[name]} unresolved at the profile's max inputs")
    return {n: TensorSpec(n, modes[n], np.dtype(trt.nptype(engine.get_tensor_dtype(n))), shapes[n]) for n in names}


def set_shape(context, name: str, shape: tuple[int, ...]) -> None:
    """``set_input_shape`` returns False (not raises) for a shape outside the profile: never ignore it."""
    if not context.set_input_shape(name, tuple(shape)):
        raise EngineError(f"TensorRT refused input shape {tuple(shape)} for {name!r} (outside the plan's profile)")


@dataclass
class BufferSet:
    """One batch in flight: its buffers (sized at the profile's max), copy stream and events."""

    copies: object  # Stream: this set's H2D and D2H
    inputs_copied: object  # Event: H2D done, the execution may start
    computed: object  # Event: execution done, the D2H may start
    done: object  # Event: the results are in pinned host memory
    host: dict = field(default_factory=dict)  # name -> PinnedBuffer
    device: dict = field(default_factory=dict)  # name -> DeviceBuffer
    rows: int = 0  # frames of the batch in flight (0: free)
    maps_copied: bool = False


class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, plan: Path, buffer_sets: int = 2, cuda_graphs: bool = True) -> None:
        from engines import cuda_buffers as cb

        trt = import_tensorrt()
        plan = Path(plan)
        meta = read_plan_sidecar(plan)
        try:
            gpu, capability = cb.gpu_info()
        except RuntimeError as exc:
            raise EngineError(f"{plan}: no usable GPU: {exc}") from exc
        check_plan_matches(meta, plan, trt.__version__, gpu, capability)
        self.meta, self.cb = meta, cb
        self.sets: list[BufferSet] = []
        self.graphs: dict[tuple[int, int], object] = {}  # (buffer set, batch size) -> CapturedGraph
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise EngineError(f"{plan}: TensorRT could not deserialize the plan; rebuild it with build-engine")
        self.context = self.engine.create_execution_context()
        self.io = discover_io(trt, self.engine, self.context)
        _, s, _, c = self.io["frames"].max_shape
        super().__init__(s, c, min(self.io[n].max_shape[0] for n in INPUTS))  # what every input's profile allows
        self.compute = cb.Stream()
        for _ in range(max(1, buffer_sets)):
            bs = BufferSet(cb.Stream(), cb.Event(), cb.Event(), cb.Event())
            for name, spec in self.io.items():
                bs.host[name] = cb.PinnedBuffer(spec.max_shape, spec.dtype)
                bs.device[name] = cb.DeviceBuffer(bs.host[name].nbytes)
            self.sets.append(bs)
        self.next = 0  # the set the next batch goes to
        self.last: BufferSet | None = None  # the set of the last collected batch (its maps are still on the GPU)
        self._last_rows = 0
        self.sizes = captured_sizes(self.max_batch)
        self.graph_error: str | None = None
        if cuda_graphs:
            try:
                self._capture_graphs()
            except (RuntimeError, EngineError) as exc:  # a runtime that cannot capture: plain enqueues, said
                self._drop_graphs()
                self.graph_error = str(exc)

    def _drop_graphs(self) -> None:
        for graph in self.graphs.values():  # they hold the context's work and the buffers' addresses
            graph.destroy()
        self.graphs = {}

    def _bind(self, bs: BufferSet, b: int) -> None:
        """Shapes for a batch of ``b`` and ``bs``'s addresses, on the one context (captured at enqueue)."""
        for name, spec in self.io.items():
            if spec.is_input:
                set_shape(self.context, name, (b, *spec.max_shape[1:]))
            if not self.context.set_tensor_address(name, int(bs.device[name].ptr)):
                raise EngineError(f"TensorRT refused the address of {name!r}")

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.compute.handle):
            raise EngineError("TensorRT execute_async_v3 failed")

    def _capture_graphs(self) -> None:
        """One CUDA graph per buffer set and padded batch size (powers of two and max): a batch then costs one
        launch instead of one per kernel. Each is enqueued once and waited for before its capture, so TensorRT
        settles what depends on the shapes outside it."""
        for k, bs in enumerate(self.sets):
            for size in self.sizes:
                self._bind(bs, size)
                self._execute()
                self.compute.synchronize()
                self.graphs[(k, size)] = self.cb.CapturedGraph(self.compute, self._execute)

    def staging(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The next buffer set's pinned input memory: the caller's batch assembly is the only host copy."""
        self.check_batch(b)
        bs = self.sets[self.next]
        if bs.rows:
            raise RuntimeError(f"all {len(self.sets)} buffer sets hold batches: collect one before submitting more")
        return bs.host["frames"].array[:b], bs.host["roi"].array[:b]

    def submit(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool = False) -> BufferSet:
        """Enqueue one batch on the next buffer set and return without waiting; ``collect`` gives its results."""
        b = len(frames)
        staged_frames, staged_roi = self.staging(b)
        k = self.next
        bs = self.sets[k]
        run = padded_size(b, self.sizes) if self.graphs else b  # a graph runs its own batch size
        if not self.graphs:
            self._bind(bs, b)  # first, so a refused shape enqueues nothing
        copy_unless_staged(staged_frames, frames)
        copy_unless_staged(staged_roi, roi)
        bs.host["roi"].array[b:run] = 0  # padding rows: nothing inspected, their outputs never copied back
        for name in INPUTS:
            bs.copies.h2d(bs.device[name], bs.host[name], run * self.io[name].row_bytes)
        bs.inputs_copied.record(bs.copies)
        self.compute.wait(bs.inputs_copied)
        if self.graphs:
            self.graphs[(k, run)].launch(self.compute)
        else:
            self._execute()
        bs.computed.record(self.compute)
        bs.copies.wait(bs.computed)
        bs.copies.d2h(bs.host["scores"], bs.device["scores"], b * self.io["scores"].row_bytes)
        if want_maps:
            bs.copies.d2h(bs.host["maps"], bs.device["maps"], b * self.io["maps"].row_bytes)
        bs.done.record(bs.copies)
        bs.rows, bs.maps_copied = b, want_maps
        self.next = (self.next + 1) % len(self.sets)
        return bs

    def collect(self, bs: BufferSet) -> tuple[np.ndarray, np.ndarray | None]:
        """Wait for ``bs``'s batch; (scores, maps or None), copied out of the set's pinned buffers."""
        bs.done.synchronize()
        b, bs.rows = bs.rows, 0
        self.last, self._last_rows = bs, b
        scores = bs.host["scores"].array[:b].astype(np.float32)
        maps = bs.host["maps"].array[:b].astype(np.float32) if bs.maps_copied else None
        return scores, maps

    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return self.collect(self.submit(frames, roi, want_maps))

    def maps_of(self, rows: list[int]) -> np.ndarray:
        """Rows of the last collected batch's maps, copied back one row each (still on the GPU until that buffer
        set takes another batch)."""
        bs = self.last
        if bs is None:
            raise RuntimeError(f"{self.name}: no batch has run yet")
        spec = self.io["maps"]
        if not bs.maps_copied:
            for r in rows:
                if not 0 <= r < self._last_rows:
                    raise IndexError(f"row {r} outside the last batch of {self._last_rows}")
                bs.copies.d2h(bs.host["maps"], bs.device["maps"], spec.row_bytes, offset=r * spec.row_bytes)
            bs.copies.synchronize()
        return bs.host["maps"].array[list(rows)].astype(np.float32)

    def close(self) -> None:
        """Finish what is in flight, release the context before the memory bound to it; safe to call twice."""
        sets, self.sets = self.sets, []
        for bs in sets:  # whatever was enqueued, collected or not
            bs.copies.synchronize()
        if sets:
            self.compute.synchronize()
        self._drop_graphs()
        self.context = None  # before the buffers: it holds their addresses
        for bs in sets:
            for buf in (*bs.host.values(), *bs.device.values()):
                buf.free()
            for event in (bs.inputs_copied, bs.computed, bs.done):
                event.destroy()
            bs.copies.destroy()
        if sets:
            self.compute.destroy()
        self.last = None

    def describe(self) -> str:
        graphs = "CUDA graphs" if self.graphs else f"no CUDA graphs ({self.graph_error or 'off'})"
        return (
            f"{self.name} ({self.image_size}px x{self.channels}, max batch {self.max_batch}, {self.meta.precision}, "
            f"{len(self.sets)} buffer sets, {graphs})"
        )
