"""The one inference graph (docs/design.md 3.5), defined once in PyTorch; ONNX Runtime and TensorRT run it.

frames uint8 ``[B, H, W, C]``, roi uint8 ``[B, H, W]`` (255 = inspect; all 255 when a camera has no static
mask) -> scores float ``[B]``, maps float ``[B, H, W]``. Inside: cast and normalisation, generator,
U-Net, ROI restriction (learned attention times the static mask), mean-filter smoothing, the largest excess over
the checkpoint's normal level (a constant map).
"""

from __future__ import annotations

import torch
from torch import nn

from model.errors import InputError
from model.grdnet import GRDNet, smooth_and_score

INPUT_NAMES = ("frames", "roi")
OUTPUT_NAMES = ("scores", "maps")


class InferenceGraph(nn.Module):
    """``precision="fp16"`` computes in half inside the graph (inputs uint8, outputs float32 either way):
    the FP16 graph a strongly typed TensorRT build needs, since TensorRT 11 has no FP16 builder flag."""

    def __init__(self, model: GRDNet, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in ("fp32", "fp16"):
            raise InputError(f"precision: expected fp32 or fp16, got {precision!r}")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.eval().to(self.dtype)
        self.kernel = model.cfg.inference.smoothing_kernel

    def forward(self, frames: torch.Tensor, roi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = frames.to(self.dtype).permute(0, 3, 1, 2) * (1.0 / 255.0)
        logits = self.model.segment_logits(x, self.model.generator.reconstruct(x))
        # sigmoid, ROI and smoothing in float32 whatever the precision: cheap, and a half sigmoid near p = 0.5
        # rounds maps by ~5e-4 before any kernel difference, half of the export parity gate
        amap = torch.sigmoid(logits.to(torch.float32)).squeeze(1) * (roi.to(torch.float32) * (1.0 / 255.0))
        scores, _ = smooth_and_score(amap, self.kernel, self.model.score_level.to(torch.float32))
        return scores, amap
