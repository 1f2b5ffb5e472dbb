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


PER_CLASS = ("image_auroc", "pixel_auroc", "aupro", "escape_rate", "false_reject_rate")


def write_report(out: Path, result: Evaluation, labels: np.ndarray, scores: np.ndarray, worst: int = 6) -> Path:
    """``out/report.html``, one self-contained file: figures, ROC and PR curves, score histograms with the threshold,
    per-class table, and the worst false rejects and worst escapes with their overlays. Returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    from model import html_report as h

    out.mkdir(parents=True, exist_ok=True)
    s, b = result.summary, result.baseline
    scorers = [("GRD-Net", result, scores)]
    if b is not None:
        scorers.append((b.summary["checkpoint"], b, np.array([r["score"] for r in b.images])))
    keys = [k for k, v in s.items() if isinstance(v, float | int) and not isinstance(v, bool)]
    parts = [
        h.section(
            "Figures",
            h.table(
                ["figure", *(n for n, _, _ in scorers)], [[k, *(e.summary.get(k) for _, e, _ in scorers)] for k in keys]
            ),
        ),
        h.section(
            "Per class",
            h.table(
                ["class", "n", "image AUROC", "pixel AUROC", "AUPRO", "escape", "false reject"],
                [
                    [
                        c,
                        d["n"],
                        *(
                            d.get(k)
                            for k in ("image_auroc", "pixel_auroc", "aupro", "escape_rate", "false_reject_rate")
                        ),
                    ]
                    for c, d in result.per_class.items()
                ],
            ),
        ),
    ]
    if result.validation:
        v = result.validation["kept"]
        parts.append(
            h.section(
                "Self-validation at training (no labels)",
                h.para(
                    f"epoch {v['epoch']}: image AUROC {v['image_auroc']:.3f}, pixel AUROC {v['pixel_auroc']:.3f}"
                    + (" - COLLAPSED" if v["collapsed"] else "")
                ),
            )
        )
    if len(np.unique(labels)) == 2:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.5))
        for name, _, sc in scorers:
            RocCurveDisplay.from_predictions(labels, sc, ax=a1, name=name)
            PrecisionRecallDisplay.from_predictions(labels, sc, ax=a2, name=name)
        a1.set_title("image ROC")
        a2.set_title("precision / recall (defective = positive)")
        curves = h.img(h.figure_uri(fig), "ROC and PR curves")
        fig, axes = plt.subplots(1, len(scorers), figsize=(5 * len(scorers), 3.5), squeeze=False)
        for ax, (name, e, sc) in zip(axes[0], scorers, strict=True):
            bins = np.histogram_bin_edges(sc[np.isfinite(sc)], bins=40)
            ax.hist(sc[labels == 0], bins=bins, alpha=0.6, label="good", color="tab:green")
            ax.hist(sc[labels == 1], bins=bins, alpha=0.6, label="defective", color="tab:red")
            ax.axvline(e.summary["threshold"], color="k", ls="--", label=f"threshold {e.summary['threshold']:.3f}")
            ax.set_title(name)
            ax.set_xlabel("image score")
            ax.legend()
        parts.append(h.section("Curves", curves, h.img(h.figure_uri(fig), "score histograms, threshold dashed")))
    thr = s["threshold"]

    def tiles(idx: np.ndarray) -> str:
        return "".join(
            h.img(
                h.image_uri(overlay(result.frames[i], result.maps[i], result.masks[i])),
                f"{result.images[i]['label']} {Path(result.images[i]['path']).name}: score {scores[i]:.3f} "
                f"({'reject' if scores[i] > thr else 'pass'})",
                width=360,
            )
            for i in idx
        )

    good, bad = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    parts.append(
        h.section(
            "Worst false rejects: the good images with the highest scores (each caption says reject or pass)",
            h.para("frame | map | map over the frame; ground truth outlined in green", "muted"),
            tiles(good[np.argsort(-scores[good])][:worst]),
        )
    )
    if bad.size:
        parts.append(
            h.section(
                "Worst escapes: the defective images with the lowest scores (each caption says reject or pass)",
                tiles(bad[np.argsort(scores[bad])][:worst]),
            )
        )
    path = out / "report.html"
    path.write_text(h.page(f"GRD-Net evaluation ({s['checkpoint']}), threshold {thr:.4f}", *parts))
    return path
