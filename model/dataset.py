"""MVTec AD layout plus ROI masks (docs/design.md 3.2): indexing, loading, and the training dataset.

Errors are ``DatasetError`` with a one-line message that names the path at fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from model.config import AugmentConfig, SynthesisConfig
from model.errors import GrdnetError
from model.synthesis import load_textures, synthesize

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class DatasetError(GrdnetError, ValueError):
    """A dataset problem; the message names the file or folder."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str  # "good" or the defect class
    roi_path: Path | None
    mask_path: Path | None


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _roi_for(root: Path, split: str, cls: str, stem: str) -> Path | None:
    per_image = root / "roi" / split / cls / f"{stem}.png"
    if per_image.is_file():
        return per_image
    fixed = root / "roi.png"
    return fixed if fixed.is_file() else None


def index_split(root: Path, split: str, use_roi: bool = True) -> list[Sample]:
    """Every image of ``root/split/<class>/``; ``test`` defects get their ground-truth mask path."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir}: missing folder (expected {split}/good/*.png)")
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if split == "train" and classes != ["good"]:
        if "good" not in classes:
            raise DatasetError(f"{split_dir / 'good'}: missing folder (train holds good images only)")
        classes = ["good"]
    samples = []
    for cls in classes:
        for path in images_in(split_dir / cls):
            mask = None
            if cls != "good":
                mask = root / "ground_truth" / cls / f"{path.stem}_mask.png"
                if not mask.is_file():
                    raise DatasetError(f"{mask}: missing ground-truth mask for {path}")
            roi = _roi_for(root, split, cls, path.stem) if use_roi else None
            samples.append(Sample(path, cls, roi, mask))
    if not samples:
        raise DatasetError(f"{split_dir}: no images")
    return samples


def read_image(path: Path, size: int, channels: int, resize: bool = False) -> np.ndarray:
    """Image as uint8 ``size x size x channels`` (RGB or gray); errors name the file.

    The model judges frames at their native resolution, so an image of another size is an error unless
    ``resize`` (``--resize``) asks to scale it: a 1 px scratch shrunk by half is no longer a scratch."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"{path}: unreadable image")
    if img.shape[:2] != (size, size) and not resize:
        raise DatasetError(
            f"{path}: {img.shape[1]}x{img.shape[0]} px, but the model's native size (net.image_size) is "
            f"{size}x{size}: crop the images to it, set net.image_size, or pass --resize to scale them"
        )
    if img.dtype != np.uint8:
        img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(img.max())))
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if channels == 3:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img.reshape(size, size, channels)


def read_mask(path: Path, image_path: Path, size: int) -> np.ndarray:
    """Binary mask float32 ``size x size``; its native size must equal its image's."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"{path}: unreadable mask")
    img = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    if img is not None and img.shape[:2] != mask.shape[:2]:
        raise DatasetError(
            f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from image "
            f"{image_path.name} {img.shape[1]}x{img.shape[0]}"
        )
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return (mask > 127).astype(np.float32)


def load_roi(sample: Sample, size: int, require_area: bool = False) -> np.ndarray:
    """The sample's ROI (1 = inspect); the whole frame when it has none. ``require_area``: an ROI that covers
    nothing is an error (training would learn that nothing on such an image ever matters)."""
    if sample.roi_path is None:
        return np.ones((size, size), np.float32)
    roi = read_mask(sample.roi_path, sample.path, size)
    if require_area and not roi.any():
        raise DatasetError(f"{sample.roi_path}: ROI mask covers nothing (255 marks where defects matter)")
    return roi


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, H, W, C]`` -> float ``[N, C, H, W]`` in [0, 1] (the model's normalisation)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def augment(
    image: np.ndarray, roi: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Same random rotation/flips for image (float HxWxC) and ROI (HxW)."""
    h, w = roi.shape
    if cfg.rotation_deg > 0:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)), 1.0)
        image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        roi = cv2.warpAffine(roi, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        image = image.reshape(h, w, -1)
    if rng.random() < cfg.hflip:
        image, roi = image[:, ::-1], roi[:, ::-1]
    if rng.random() < cfg.vflip:
        image, roi = image[::-1], roi[::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(roi)


def random_patch(
    image: np.ndarray, roi: np.ndarray, patch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A ``patch x patch`` crop at native resolution, at a uniform random position, of image and ROI alike."""
    h, w = roi.shape
    y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
    return image[y : y + patch, x : x + patch], roi[y : y + patch, x : x + patch]


def load_train_images(
    samples: list[Sample], size: int, channels: int, whole_image_roi: bool = False, resize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images ``[N, S, S, C]``, float ROIs ``[N, S, S]``) at native size; one-line errors name the file."""
    images = np.stack([read_image(s.path, size, channels, resize) for s in samples])
    ones = np.ones((size, size), np.float32)
    rois = np.stack([ones if whole_image_roi else load_roi(s, size, require_area=True) for s in samples])
    return images, rois


class EpochSampler(Sampler):
    """Keys ``(epoch, index)`` for a ``TrainSet``, in an order drawn from (seed, epoch): the epoch travels with
    each key, so a DataLoader's persistent workers (forked once, not every epoch) synthesise the epoch the
    training loop asks for. Set ``epoch`` before iterating."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, 104_729]).permutation(self.n)
        return iter([(self.epoch, int(i)) for i in order])


def loader_epoch(loader: DataLoader) -> int:
    """The epoch whose batches an ``EpochSampler`` loader yields next."""
    return loader.sampler.epoch  # type: ignore[attr-defined]


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """The epoch whose batches (order, patches, augmentation, anomalies) ``loader`` yields next: the training
    loop's, or a tag of its own for BatchNorm recomputation (model/keeping.py), which restores the loop's."""
    loader.sampler.epoch = epoch  # type: ignore[attr-defined]


class TrainSet(Dataset):
    """Good images held in memory at native resolution; each item is a patch (``patch`` px, or the whole frame)
    with its augmentation and synthetic anomaly from an rng seeded by (seed, epoch, index), so items are the
    same whichever process of a DataLoader computes them. Keys are ``(epoch, index)`` (``EpochSampler``) or a
    plain index of epoch 0.

    Item = (clean x, noisy x*, anomaly mask M, ROI), tensors ``[C,P,P]``, ``[C,P,P]``, ``[1,P,P]``, ``[1,P,P]``.
    """

    def __init__(
        self,
        *,
        images: np.ndarray,
        rois: np.ndarray,
        patch: int,
        augment_cfg: AugmentConfig,
        synth_cfg: SynthesisConfig,
        seed: int,
    ) -> None:
        self.images, self.rois, self.patch = images, rois, patch
        self.augment_cfg, self.synth_cfg = augment_cfg, synth_cfg
        self.textures = load_textures(synth_cfg.texture_dir, patch)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, ...]:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, i])
        img, roi = self.images[i], self.rois[i]
        if self.patch < roi.shape[0]:
            img, roi = random_patch(img, roi, self.patch, rng)
        img, roi = augment(img.astype(np.float32) / 255.0, roi, rng, self.augment_cfg)
        noisy, mask = synthesize(img, rng, self.synth_cfg, self.textures)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        return t(img).permute(2, 0, 1), t(noisy).permute(2, 0, 1), t(mask)[None], t(roi)[None]
