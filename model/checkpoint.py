"""Checkpoints: one safetensors file; its metadata holds the full config, threshold and provenance as JSON.

safetensors cannot execute code on load (no pickle), which docs/design.md section 4 asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from model.baseline import ClassicBaseline
from model.config import GRDNetConfig
from model.errors import GrdnetError, first_error
from model.grdnet import GRDNet, create_grdnet
from model.roi_prior import decode_mask

META_KEY = "grdnet"
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "grdnet-vials-cpu.safetensors"


class Calibration(BaseModel):
    """How the threshold was derived (model/inference.calibrate_threshold) and what it did on validation."""

    rule: str = (
        "t = q + margin * (q - median) over held-out good scores, capped at the max_val_escape quantile of defects"
    )
    quantile: float
    margin: float
    max_val_escape: float
    source: str
    n_good: int
    n_defective: int
    good_quantile_score: float
    good_median_score: float
    defect_escape_cap: float | None
    val_false_reject_rate: float
    val_escape_rate: float | None


class CheckpointMeta(BaseModel):
    id: str = ""
    config: GRDNetConfig
    threshold: float
    image_size: int
    channels: int
    normalisation: dict = Field(default_factory=lambda: {"input": "uint8", "scale": 1 / 255, "mean": 0.0, "std": 1.0})
    calibration: Calibration | None = None
    validation: dict | None = None  # self-validation: the kept epoch's figures and the curve
    baseline: ClassicBaseline | None = None  # the classical peer, fitted on the same validation set
    # base64 PNG (model/roi_prior.py): where the training ROIs agree; the image score is taken inside it, and it
    # is the ROI of a camera whose line config names no mask of its own (None: the whole frame)
    roi_prior_png: str | None = None
    training: dict = Field(default_factory=dict)

    def roi_prior(self) -> np.ndarray | None:
        """bool ``[S, S]`` or None (checkpoints trained before the prior: the whole frame counts)."""
        return None if self.roi_prior_png is None else decode_mask(self.roi_prior_png)


class CheckpointError(GrdnetError, ValueError):
    """A checkpoint that cannot be used; the message names the file."""


def save_checkpoint(path: Path, model: GRDNet, meta: CheckpointMeta) -> CheckpointMeta:
    """Write exactly ``path`` (atomically, via a temp file beside it); the id hashes the weights."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    digest = hashlib.sha256()
    for k in sorted(tensors):
        digest.update(k.encode())
        digest.update(tensors[k].numpy().tobytes())
    meta = meta.model_copy(update={"id": f"grdnet-{meta.config.name}-{digest.hexdigest()[:12]}"})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={META_KEY: meta.model_dump_json()})
    os.replace(tmp, path)
    return meta


def read_meta(path: Path) -> CheckpointMeta:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a GRD-Net checkpoint ({exc})") from exc
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without GRD-Net metadata")
    try:
        return CheckpointMeta.model_validate(json.loads(raw))
    except ValidationError as exc:
        raise CheckpointError(
            f"{path}: bad checkpoint metadata: {first_error(exc)} (written by another version of this code?)"
        ) from exc
    except ValueError as exc:
        raise CheckpointError(f"{path}: bad checkpoint metadata: {exc}") from exc


def load_checkpoint(path: Path) -> tuple[GRDNet, CheckpointMeta]:
    """Rebuild the model from the stored config and load its weights (eval mode)."""
    meta = read_meta(path)
    model = create_grdnet(meta.config)
    try:
        state = load_file(str(path))
        # written before the normal level existed: a zero level scores as those checkpoints were calibrated
        state.setdefault("score_level", torch.zeros_like(model.score_level))
        model.load_state_dict(state)
    except (RuntimeError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: weights do not match the stored config: {exc}") from exc
    return model.eval(), meta
