"""``evaluate --report``: anomaly-map overlays for a sample of images and the image-level ROC plot (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from model.evaluate import Evaluation


def overlay(frame: np.ndarray, amap: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 frame + [0,1] map -> three panels side by side (frame | map | map over the frame), ground truth
    outlined in green: what a reject is, where the model saw it, and both together."""
    rgb = frame if frame.shape[-1] == 3 else np.repeat(frame, 3, axis=-1)
    heat = cv2.applyColorMap((np.clip(amap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    blend = cv2.addWeighted(rgb, 0.55, heat, 0.45, 0)
    if mask is not None and mask.any():
        contours, _ = cv2.findContours((mask > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(blend, contours, -1, (0, 255, 0), 1)
    return np.concatenate([rgb, heat, blend], axis=1)


def write_report(out: Path, result: Evaluation, labels: np.ndarray, scores: np.ndarray, per_class: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    out.mkdir(parents=True, exist_ok=True)
    by_class: dict[str, int] = {}
    for i, row in enumerate(result.images):
        if by_class.get(row["label"], 0) >= per_class:
            continue
        by_class[row["label"]] = by_class.get(row["label"], 0) + 1
        img = overlay(result.frames[i], result.maps[i], result.masks[i])
        verdict = "reject" if row["reject"] else "pass"
        name = f"{row['label']}_{Path(row['path']).stem}_{verdict}_{row['score']:.3f}.png"
        cv2.imwrite(str(out / name), img[..., ::-1])
    if len(np.unique(labels)) == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        RocCurveDisplay.from_predictions(labels, scores, ax=ax, name="GRD-Net")
        ax.set_title(f"image ROC, AUROC {result.summary['image_auroc']:.3f}")
        fig.savefig(out / "roc.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
