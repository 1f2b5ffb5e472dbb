"""Write a synthetic product family as a dataset in the docs/design.md 3.2 layout (``run_line.py synth``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from model.products import get_product

OUTSIDE_ROI_PREFIX = "outside_roi_"  # test/good images whose only defects lie outside the ROI


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = image[..., ::-1]
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: cannot write")


def write_product_dataset(
    out: Path, n_train: int, n_test: int, seed: int, size: int = 256, product: str = "vials"
) -> dict[str, int]:
    """train/good: clean good units. test: 1/2 good (of which half carry web defects outside the ROI,
    named ``outside_roi_*``) and 1/2 defective, split over the product's defects. Deterministic by ``seed``."""
    out = Path(out)
    family = get_product(product)
    DEFECTS = family.defects  # noqa: N806
    counts: dict[str, int] = {}
    jobs: list[tuple[str, str, str | None, str]] = []  # (split, class, defect, placement)
    jobs += [("train", "good", None, "inside")] * n_train
    n_good = n_test // 2
    n_outside = n_good // 2
    jobs += [("test", "good", None, "inside")] * (n_good - n_outside)
    jobs += [("test", "good", str(DEFECTS[i % len(DEFECTS)]), "outside") for i in range(n_outside)]
    jobs += [("test", DEFECTS[i % len(DEFECTS)], DEFECTS[i % len(DEFECTS)], "inside") for i in range(n_test - n_good)]
    for idx, (split, cls, defect, placement) in enumerate(tqdm(jobs, desc="rendering", unit="img")):
        rng = np.random.default_rng([seed, idx])
        frame = family.render(rng, size, defect, placement)  # type: ignore[arg-type]
        prefix = OUTSIDE_ROI_PREFIX if placement == "outside" else ""
        stem = f"{prefix}{idx:04d}"
        _write(out / split / cls / f"{stem}.png", frame.image)
        _write(out / "roi" / split / cls / f"{stem}.png", frame.roi)
        if cls != "good":
            _write(out / "ground_truth" / cls / f"{stem}_mask.png", frame.defect_mask)
        key = f"{split}/{cls}" + ("(outside roi)" if prefix else "")
        counts[key] = counts.get(key, 0) + 1
    return counts
