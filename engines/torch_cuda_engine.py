"""PyTorch on a GPU without TensorRT: what ``pip`` gives a GPU host today (``auto`` picks it there).

The same inference graph as every engine (engines/graph.py), with the settings that keep a GPU busy from
Python: channels-last weights (the uint8 NHWC frames permute into channels-last for free), FP16 or BF16 autocast
for the convolutions (sigmoid, ROI and smoothing stay float32 inside the graph), one CUDA graph per captured
batch size (a batch is padded up to the next one, so a handful of graphs cover 1..max_batch), pinned host
staging buffers the frames are copied into once, and the maps copied back only when asked for.

Reduced precision is gated like ``export``: on the export's parity frames it must match this engine's own
FP32 run within ``PARITY_LIMIT`` with the same verdicts, or the engine runs FP32 and says why
(``self.parity``). On a CPU device (tests) there are no CUDA graphs and no pinned memory; everything else is
the same code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engines.base import Engine, EngineError, captured_sizes, copy_unless_staged, has_fast_half, padded_size
from engines.export import PARITY_LIMIT, Parity, parity_frames
from engines.graph import InferenceGraph
from model.checkpoint import load_checkpoint
from model.errors import InputError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def fast_half(device: torch.device) -> str:
    """``fp16`` on GPUs with fast half math (compute capability 7.0+: tensor cores), else ``fp32``."""
    if device.type != "cuda":
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    return "fp16" if has_fast_half(major) else "fp32"


class TorchCudaEngine(Engine):
    name = "torch-cuda"

    def __init__(
        self,
        checkpoint: Path,
        max_batch: int = 16,
        precision: str = "auto",
        cuda_graphs: bool = True,
        device: str = "cuda",
    ) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError("engine torch-cuda: this torch has no usable CUDA device; use --engine onnxruntime")
        model, self.meta = load_checkpoint(Path(checkpoint))
        super().__init__(self.meta.image_size, self.meta.channels, max_batch)
        self.graph = InferenceGraph(model).to(self.device).to(memory_format=torch.channels_last).eval()
        wanted = fast_half(self.device) if precision == "auto" else precision
        if wanted not in PRECISIONS:
            raise InputError(f"precision: expected auto, {', '.join(PRECISIONS)}, got {precision!r}")
        self.dtype = torch.float32
        self.parity: dict = {"precision": "fp32"}
        if wanted != "fp32":
            self._gate(PRECISIONS[wanted], wanted)
        self.sizes = captured_sizes(max_batch)
        self.use_graphs = cuda_graphs and self.device.type == "cuda"
        self._graphs: dict[int, tuple] = {}  # size -> (CUDAGraph, frames, roi, scores, maps)
        pin = self.device.type == "cuda"
        s, c = self.image_size, self.channels
        self._host_frames = torch.empty((max_batch, s, s, c), dtype=torch.uint8, pin_memory=pin)
        self._host_roi = torch.empty((max_batch, s, s), dtype=torch.uint8, pin_memory=pin)
        self._device_maps: torch.Tensor | None = None

    def _forward(self, frames: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            return self.graph(frames, roi)

    @torch.inference_mode()
    def _gate(self, dtype: torch.dtype, name: str) -> None:
        """Keep ``dtype`` only if it matches FP32 within the export's parity limit, with the same verdicts."""
        frames = torch.from_numpy(parity_frames(self.image_size, self.channels, 4, 0)).to(self.device)
        roi = torch.full(frames.shape[:3], 255, dtype=torch.uint8, device=self.device)
        ref_s, ref_m = self._forward(frames, roi)
        self.dtype = dtype
        s, m = self._forward(frames, roi)
        ds, dm = float((s - ref_s).abs().max()), float((m - ref_m).abs().max())
        same = bool(((s > self.meta.threshold) == (ref_s > self.meta.threshold)).all())
        ok = Parity(ds, dm, same).passes()
        self.parity = {"precision": name if ok else "fp32", "tried": name, "max_score_delta": ds}
        self.parity.update(max_map_delta=dm, verdicts_equal=same)
        if not ok:
            self.dtype = torch.float32
            self.parity["why"] = f"{name} differs from FP32 by {max(ds, dm):.1e} (limit {PARITY_LIMIT}): runs FP32"

    def _captured(self, size: int) -> tuple:
        """The CUDA graph of one padded batch size, captured on first use (after a warm-up on a side stream,
        as CUDA graph capture requires)."""
        if size not in self._graphs:
            s, c = self.image_size, self.channels
            frames = torch.zeros((size, s, s, c), dtype=torch.uint8, device=self.device)
            roi = torch.zeros((size, s, s), dtype=torch.uint8, device=self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):
                    self._forward(frames, roi)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                scores, maps = self._forward(frames, roi)
            self._graphs[size] = (graph, frames, roi, scores, maps)
        return self._graphs[size]

    @torch.inference_mode()
    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        b = len(frames)
        for host, arr in ((self._host_frames, frames), (self._host_roi, roi)):
            copy_unless_staged(host[:b].numpy(), arr)  # one copy into pinned memory at most; the H2D is async
        if not self.use_graphs:
            f = self._host_frames[:b].to(self.device, non_blocking=True)
            r = self._host_roi[:b].to(self.device, non_blocking=True)
            scores, maps = self._forward(f, r)
        else:
            graph, f, r, out_s, out_m = self._captured(padded_size(b, self.sizes))
            f[:b].copy_(self._host_frames[:b], non_blocking=True)
            r[:b].copy_(self._host_roi[:b], non_blocking=True)
            if len(f) > b:
                r[b:].zero_()  # padding rows: nothing inspected, outputs dropped
            graph.replay()
            scores, maps = out_s[:b], out_m[:b]
        self._device_maps = maps  # on the GPU until the next batch: maps_of copies back only the rows asked for
        out_scores = scores.float().cpu().numpy()
        return out_scores, (maps.float().cpu().numpy() if want_maps else None)

    def staging(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The pinned host buffers themselves: the caller's batch assembly is the only host copy."""
        self.check_batch(b)
        return self._host_frames[:b].numpy(), self._host_roi[:b].numpy()

    def maps_of(self, rows: list[int]) -> np.ndarray:
        if self._device_maps is None:
            raise RuntimeError(f"{self.name}: no batch has run yet")
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self._device_maps.device)
        return self._device_maps.index_select(0, index).float().cpu().numpy()

    def describe(self) -> str:
        extras = self.parity["precision"] + (", CUDA graphs" if self.use_graphs else "")
        return f"{self.name} ({self.image_size}px x{self.channels}, max batch {self.max_batch}, {extras})"
