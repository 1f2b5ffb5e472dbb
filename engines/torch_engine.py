"""PyTorch eager engine: development, and the parity reference for the compiled engines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engines.base import Engine
from engines.graph import InferenceGraph
from model.checkpoint import load_checkpoint


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, checkpoint: Path, max_batch: int = 16, threads: int | None = None) -> None:
        model, self.meta = load_checkpoint(Path(checkpoint))
        super().__init__(self.meta.image_size, self.meta.channels, max_batch)
        if threads:
            torch.set_num_threads(threads)
        self.graph = InferenceGraph(model)

    @torch.inference_mode()
    def _run(self, frames: np.ndarray, roi: np.ndarray, want_maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        scores, maps = self.graph(torch.from_numpy(frames), torch.from_numpy(roi))
        self._last_maps = maps.numpy()
        return scores.numpy(), self._last_maps if want_maps else None
