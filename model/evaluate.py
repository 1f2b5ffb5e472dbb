"""``run_line.py evaluate``: score a dataset's test split with a checkpoint; summary, per class, per image."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from model import metrics
from model.checkpoint import load_checkpoint
from model.dataset import index_split, load_roi, read_image, read_mask
from model.grdnet import smooth_and_score
from model.inference import score_images
from model.synth_dataset import OUTSIDE_ROI_PREFIX


@dataclass
class Evaluation:
    summary: dict
    per_class: dict
    images: list[dict]
    maps: np.ndarray
    masks: np.ndarray
    frames: np.ndarray


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def evaluate_checkpoint(
    data_dir: Path,
    checkpoint: Path,
    use_test_roi: bool = False,
    json_path: Path | None = None,
    report_dir: Path | None = None,
) -> Evaluation:
    model, meta = load_checkpoint(checkpoint)
    size, ch = meta.image_size, meta.channels
    samples = index_split(Path(data_dir), "test", use_roi=use_test_roi)
    frames = np.stack([read_image(s.path, size, ch) for s in samples])
    masks = np.stack(
        [read_mask(s.mask_path, s.path, size) if s.mask_path else np.zeros((size, size), np.float32) for s in samples]
    )
    scores, maps = score_images(model, frames)
    if use_test_roi:
        maps = maps * np.stack([load_roi(s, size) for s in samples])
        s, _ = smooth_and_score(torch.from_numpy(maps), meta.config.inference.smoothing_kernel)
        scores = s.numpy()
    labels = np.array([0 if s.label == "good" else 1 for s in samples])
    thr = meta.threshold
    outside = np.array([s.label == "good" and s.path.name.startswith(OUTSIDE_ROI_PREFIX) for s in samples])
    plain_good = (labels == 0) & ~outside

    summary = {
        "image_auroc": metrics.image_auroc(labels, scores),
        "pixel_auroc": metrics.pixel_auroc(maps, masks),
        "aupro": metrics.aupro(maps, masks),
        "f1_max": metrics.f1_max(labels, scores),
        "threshold": thr,
        **metrics.operating_point(labels, scores, thr),
    }
    if outside.any():
        summary["false_reject_rate_plain_good"] = float((scores[plain_good] > thr).mean())
        summary["false_reject_rate_outside_roi_good"] = float((scores[outside] > thr).mean())
    summary.update(
        n_images=len(samples),
        n_good=int((labels == 0).sum()),
        n_defective=int(labels.sum()),
        checkpoint=meta.id,
        test_roi_applied=use_test_roi,
    )

    per_class = {}
    good = labels == 0
    for cls in sorted({s.label for s in samples} - {"good"}):
        sel = np.array([s.label == cls for s in samples])
        both = sel | good
        per_class[cls] = {
            "n": int(sel.sum()),
            "image_auroc": metrics.image_auroc(labels[both], scores[both]),
            "pixel_auroc": metrics.pixel_auroc(maps[both], masks[both]),
            "aupro": metrics.aupro(maps[both], masks[both]),
            "escape_rate": float((scores[sel] <= thr).mean()),
        }
    per_class["good"] = {"n": int(good.sum()), "false_reject_rate": float((scores[good] > thr).mean())}

    images = [
        {"path": str(s.path), "label": s.label, "score": float(sc), "reject": bool(sc > thr)}
        for s, sc in zip(samples, scores, strict=True)
    ]
    result = Evaluation(summary, per_class, images, maps, masks, frames)
    if json_path:
        clean = {k: (_finite(v) if isinstance(v, float) else v) for k, v in summary.items()}
        pc = {c: {k: (_finite(v) if isinstance(v, float) else v) for k, v in d.items()} for c, d in per_class.items()}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"summary": clean, "per_class": pc, "images": images}, indent=1))
    if report_dir:
        from model.report import write_report

        write_report(report_dir, result, labels, scores)
    return result


def print_summary(result: Evaluation) -> None:
    console = Console()
    table = Table(title=f"GRD-Net evaluation ({result.summary['checkpoint']})")
    cols = ["class", "n", "image AUROC", "pixel AUROC", "AUPRO", "escape", "false reject"]
    for c in cols:
        table.add_column(c, justify="right" if c != "class" else "left")

    def f(x: float | None) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    for cls, d in result.per_class.items():
        table.add_row(
            cls,
            str(d["n"]),
            f(d.get("image_auroc")),
            f(d.get("pixel_auroc")),
            f(d.get("aupro")),
            f(d.get("escape_rate")),
            f(d.get("false_reject_rate")),
        )
    s = result.summary
    table.add_row(
        "all",
        str(s["n_images"]),
        f(s["image_auroc"]),
        f(s["pixel_auroc"]),
        f(s["aupro"]),
        f(s["escape_rate"]),
        f(s["false_reject_rate"]),
        style="bold",
    )
    console.print(table)
    extra = f"F1-max {f(s['f1_max'])}  accuracy {f(s['accuracy'])}  threshold {s['threshold']:.4f}"
    if "false_reject_rate_outside_roi_good" in s:
        extra += (
            f"  false reject: plain good {f(s['false_reject_rate_plain_good'])}, "
            f"good with defects outside the ROI {f(s['false_reject_rate_outside_roi_good'])}"
        )
    console.print(extra)
