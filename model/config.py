"""One config object that fully describes GRD-Net: architecture, training recipe, inference post-processing.

Presets live as YAML in ``config/models/<name>.yaml``; a checkpoint stores the resolved config so that a
model can always be rebuilt exactly as it was trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model.errors import InputError, first_error

PRESET_DIR = Path(__file__).resolve().parents[1] / "config" / "models"


class StrictModel(BaseModel):
    """Every config section: an unknown key is an error naming it, never silently ignored (model and line)."""

    model_config = ConfigDict(extra="forbid")


class NetConfig(StrictModel):
    """Architecture of the generator, discriminator and discriminative U-Net."""

    image_size: int = Field(
        128, ge=32, description="native square side of the frames the model judges (px); inference sees whole frames"
    )
    patch_size: int | None = Field(
        None, ge=32, description="training crops of this side cut at native resolution; None: whole frames"
    )
    channels: Literal[1, 3] = 3
    base_width: int = Field(16, ge=4, description="width of the first encoder stage")
    stages: int = Field(4, ge=2, le=6, description="encoder stages, each halves the resolution")
    max_width_mult: int = Field(8, ge=1, description="stage widths are base * 2^i, capped at base * this")
    blocks_per_stage: int = Field(2, ge=1)
    bottleneck: Literal["crae", "drae"] = "crae"
    latent_channels: int = Field(32, ge=1, description="CRAE: channels of the convolutional latent")
    latent_dim: int = Field(2048, ge=8, description="DRAE: size of the dense latent")
    unet_widths: list[int] = Field(default_factory=lambda: [16, 32, 64])
    unet_middle: int = 128
    unet_prior: float | None = Field(
        None, gt=0, lt=1, description="initial anomaly probability of every pixel (focal-loss prior); None: p=0.5"
    )

    def encoder_widths(self) -> list[int]:
        return [self.base_width * min(2**i, self.max_width_mult) for i in range(self.stages)]

    def latent_side(self) -> int:
        """Side of the latent of a training input (the discriminator's and the dense bottleneck's size)."""
        return self.train_size() // 2**self.stages

    def train_size(self) -> int:
        """Side of what training feeds the networks: a native-resolution patch, or the whole frame."""
        return self.patch_size or self.image_size


class AugmentConfig(StrictModel):
    """Geometric augmentation of training images (applied to image and ROI together)."""

    rotation_deg: float = Field(90.0, ge=0, le=180, description="uniform rotation in [-r, r] degrees")
    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)


class SynthesisConfig(StrictModel):
    """Perlin-noise synthetic anomalies (DRAEM, as GRD-Net uses them)."""

    probability: float = Field(0.6, ge=0, le=1, description="share of training samples that get an anomaly")
    min_scale_exp: int = Field(0, ge=0)
    max_scale_exp: int = Field(5, ge=0, description="Perlin scale 2^k per axis, k in [min, max]")
    threshold: float = 0.5
    beta_min: float = Field(0.5, ge=0, le=1)
    beta_max: float = Field(1.0, ge=0, le=1)
    min_area_fraction: float = Field(0.0005, ge=0, description="masks smaller than this are skipped")
    thin_fraction: float = Field(
        0.0, ge=0, le=1, description="share of anomalies drawn as thin Perlin curves (zero crossings) not blobs"
    )
    thin_width_px: tuple[float, float] = Field((1.0, 3.0), description="width range of a thin curve (px)")
    thin_scale_exp: tuple[int, int] = Field((1, 3), description="Perlin scale 2^k of the curves, k in [a, b]")
    small_fraction: float = Field(
        0.0, ge=0, le=1, description="share of the blob anomalies cut to one small window (specks, particles)"
    )
    small_radius_px: tuple[float, float] = Field((2.0, 6.0), description="radius range of a small anomaly (px)")
    texture_dir: str | None = None


class LossConfig(StrictModel):
    """Loss weights: L_gen = w_adv L_adv + w_con L_con + w_enc L_enc; plus the ROI focal term."""

    w_adv: float = 1.0
    w_con: float = 50.0
    w_enc: float = 1.0
    wa: float = 1.0
    wb: float = 1.0
    ssim_window: int = 11
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    roi_variant: Literal[1, 2, 3, 4] = Field(2, description="ablation case of paper section 8.4.2")
    overlap_weight: float = Field(0.1, ge=0, description="lambda of the overlap term (variants 1, 3, 4)")
    disc_reinit_below: float = Field(1e-5, description="re-initialise the discriminator under this loss")


class TrainConfig(StrictModel):
    """Optimiser and schedule (paper: Adam 1e-4, betas (0.5, 0.999), reduce-on-plateau patience 3)."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_schedule: Literal["plateau", "cosine", "budget"] = Field(
        "plateau",
        description="plateau: the paper's reduce-on-plateau; cosine: lr -> lr * cosine_floor over `epochs`; "
        "budget: the same half cosine over the run's real budget (--max-minutes or epochs), stepped every step",
    )
    cosine_floor: float = Field(0.05, gt=0, le=1, description="cosine, budget: the last lr as a fraction of lr")
    plateau_patience: int = 3
    plateau_factor: float = Field(0.904837418, description="e^-0.1")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="the training step's forward passes: bf16 autocast (auto: where the CPU has AMX); weights, "
        "losses, validation and the checkpoint stay fp32",
    )
    channels_last: bool = Field(
        True, description="with bf16: channels-last tensors, oneDNN's preferred layout (never with fp32: it crashed)"
    )
    ema_decay: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="validate and keep an exponential moving average of the weights, updated every step with this "
        "decay (0: the raw weights); it smooths the step-to-step noise of a short run",
    )
    seg_updates: int = Field(
        1,
        ge=1,
        description="U-Net updates per discriminator/generator update: the other steps update the U-Net alone on "
        "the generator's reconstruction (no gradient), at ~30 % of a full step's cost; the map is the U-Net's",
    )
    disc_every: int = Field(
        1,
        ge=1,
        description="update the discriminator on every n-th full step only (the generator still learns from its "
        "features every step): its update is ~23 % of a step on 2 CPU cores, so a short run buys more steps",
    )
    loader_workers: int = Field(1, ge=0, description="processes that synthesise batches beside training (0: inline)")
    bn_batches: int = Field(
        0, ge=0, description="before each validation: recompute BatchNorm statistics over this many batches (0: no)"
    )
    holdout_fraction: float = Field(
        0.1, ge=0, lt=1, description="train/good slice kept out for self-validation and calibration"
    )
    min_holdout: int = 8
    validate_every: int = Field(0, ge=0, description="epochs between self-validations (0: none, keep the last)")
    validate_from: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="no self-validation before this fraction of the budget (the last epoch is always validated)",
    )
    early_stop_patience: int = Field(0, ge=0, description="validations without improvement before stopping (0: off)")
    early_stop_under_time_limit: bool = Field(
        False,
        description="apply early_stop_patience under --max-minutes too: off, a time-limited run ends on its plan, "
        "because the schedule anneals over the plan and its last, low-lr epochs are the ones usually kept "
        "(benchmark 2026-12-07: 5 of 9 runs stopped early, kept epochs 14-22 of 30-33 planned)",
    )
    keep_tolerance: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="a later self-validation within this of the best image AUROC seen is kept instead (and counts as "
        "an improvement for early stopping): differences below the validation's noise prefer the later, lower-lr "
        "weights (0: the strictly best)",
    )
    smoothing_kernels: list[int] | None = Field(
        None, description="kernels self-validation chooses inference.smoothing_kernel from (None: keep it)"
    )
    level_widen_choices: list[int] | None = Field(
        None,
        description="widenings of the normal level self-validation chooses inference.level_widen_px from, with the "
        "kernel (None: keep it)",
    )
    val_defects_per_image: int = Field(2, ge=1, description="synthetic validation defects per held-out image")
    threshold_quantile: float = Field(0.99, gt=0, le=1, description="of held-out good scores: 1 - target FRR")
    threshold_margin: float = Field(
        0.5, ge=0, description="added above that quantile, in units of the good scores' spread (q - median)"
    )
    max_val_escape: float = Field(
        0.05, ge=0, le=1, description="the margin stops where it would pass more than this share of val defects"
    )


class InferenceConfig(StrictModel):
    """Post-processing of the anomaly map into an image score (DRAEM: 21x21 mean filter, then max)."""

    smoothing_kernel: int = Field(21, ge=1)
    roi_prior: bool = Field(
        True, description="score inside the ROI prior (where the training ROIs agree), not the whole frame"
    )
    roi_prior_widen_px: int = Field(0, ge=0, description="the prior is dilated by this much for the product's jitter")
    level_images: int = Field(
        64, ge=0, description="good training frames whose maps set the normal level (model/level.py; 0: none)"
    )
    level_widen_px: int = Field(6, ge=0, description="the normal level is dilated by this much for jitter")


class GRDNetConfig(StrictModel):
    """Everything needed to build, train and run one GRD-Net."""

    name: str = "cpu"
    net: NetConfig = Field(default_factory=NetConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config_file(path: Path) -> GRDNetConfig:
    """Load a model config YAML; errors name the file and the offending key."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read model config: {exc}") from exc
    try:
        return GRDNetConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{path}: {first_error(exc)}") from exc


def load_preset(name: str) -> GRDNetConfig:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    return load_config_file(path)
