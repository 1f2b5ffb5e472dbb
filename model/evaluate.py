"""``run_line.py evaluate``: score a dataset's test split with a checkpoint; summary, per class, per image."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from model import metrics
from model.checkpoint import CheckpointError, load_checkpoint
from model.dataset import Sample, index_split, load_roi, read_image, read_mask
from model.inference import score_images
from model.synth_dataset import OUTSIDE_ROI_PREFIX

TARGET_FRR = 0.02  # issue 10's false-reject target for plain good images: the best escape is reported at it


@dataclass
class Evaluation:
    summary: dict
    per_class: dict
    images: list[dict]
    maps: np.ndarray
    masks: np.ndarray
    frames: np.ndarray
    validation: dict | None = None  # the checkpoint's own self-validation figures (no labels needed)
    baseline: Evaluation | None = None  # the classical peer on the same test set
    samples: list[Sample] = field(default_factory=list)  # the test images, in the order of ``images``


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


def outside_roi_goods(samples: list[Sample]) -> np.ndarray:
    """bool per sample: a good image whose only marks lie outside the ROI (synth's ``outside_roi_`` files)."""
    return np.array([s.label == "good" and s.path.name.startswith(OUTSIDE_ROI_PREFIX) for s in samples])


def operating_rates(samples: list[Sample], labels: np.ndarray, scores: np.ndarray, thr: float) -> dict:
    """What a threshold does on a test set: accuracy, escape and false-reject rates, the latter also for plain
    good images and for good images marked only outside the ROI (when the set has them)."""
    rates = {"threshold": thr, **metrics.operating_point(labels, scores, thr)}
    outside = outside_roi_goods(samples)
    if outside.any():
        rates["false_reject_rate_plain_good"] = float((scores[(labels == 0) & ~outside] > thr).mean())
        rates["false_reject_rate_outside_roi_good"] = float((scores[outside] > thr).mean())
    return rates


def judge(
    samples: list[Sample], labels: np.ndarray, scores: np.ndarray, maps: np.ndarray, masks: np.ndarray, thr: float
) -> tuple:
    """(summary, per_class) of one scorer on one test set at its threshold (docs/design.md 3.6)."""
    summary = {
        "image_auroc": metrics.image_auroc(labels, scores),
        "pixel_auroc": metrics.pixel_auroc(maps, masks),
        "aupro": metrics.aupro(maps, masks),
        "f1_max": metrics.f1_max(labels, scores),
        **operating_rates(samples, labels, scores, thr),
    }
    outside = outside_roi_goods(samples)
    # the separation's limit: no threshold rule can pass fewer defects at the target false-reject rate
    judged = ((labels == 0) & ~outside) | (labels == 1)
    summary["best_escape_at_frr_0.02"] = metrics.best_escape_at(labels[judged], scores[judged], TARGET_FRR)
    summary.update(n_images=len(samples), n_good=int((labels == 0).sum()), n_defective=int(labels.sum()))
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
    return summary, per_class


def _clean(d: dict) -> dict:
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in d.items()}


def evaluate_checkpoint(
    data_dir: Path,
    checkpoint: Path,
    use_test_roi: bool = False,
    json_path: Path | None = None,
    report_dir: Path | None = None,
    baseline: bool = False,
    resize: bool = False,
) -> Evaluation:
    model, meta = load_checkpoint(checkpoint)
    size, ch = meta.image_size, meta.channels
    samples = index_split(Path(data_dir), "test", use_roi=use_test_roi)
    frames = np.stack([read_image(s.path, size, ch, resize) for s in samples])
    masks = np.stack(
        [read_mask(s.mask_path, s.path, size) if s.mask_path else np.zeros((size, size), np.float32) for s in samples]
    )
    test_roi = np.stack([load_roi(s, size) for s in samples]) if use_test_roi else None
    # without test masks the score is taken where the line takes it: inside the checkpoint's ROI prior
    scores, maps = score_images(model, frames, test_roi if test_roi is not None else meta.roi_prior())
    labels = np.array([0 if s.label == "good" else 1 for s in samples])
    summary, per_class = judge(samples, labels, scores, maps, masks, meta.threshold)
    summary.update(
        checkpoint=meta.id,
        test_roi_applied=use_test_roi,
        roi_prior_applied=not use_test_roi and meta.roi_prior_png is not None,
    )
    images = [
        {"path": str(s.path), "label": s.label, "score": float(sc), "reject": bool(sc > meta.threshold)}
        for s, sc in zip(samples, scores, strict=True)
    ]
    result = Evaluation(summary, per_class, images, maps, masks, frames, validation=meta.validation, samples=samples)
    if baseline:
        if meta.baseline is None:
            raise CheckpointError(f"{checkpoint}: no classical baseline stored (trained without a holdout?)")
        b_scores, b_maps = meta.baseline.score(frames)
        if test_roi is not None:
            b_maps = b_maps * test_roi
            b_scores = b_maps.reshape(len(b_maps), -1).max(axis=1)
        b_summary, b_per_class = judge(samples, labels, b_scores, b_maps, masks, meta.baseline.threshold)
        b_summary.update(checkpoint=f"classic median filter {meta.baseline.kernel}x{meta.baseline.kernel}")
        b_images = [{"score": float(x)} for x in b_scores]
        result.baseline = Evaluation(b_summary, b_per_class, b_images, b_maps, masks, frames)
    if json_path:
        doc: dict = {
            "summary": _clean(summary),
            "per_class": {c: _clean(d) for c, d in per_class.items()},
            "images": images,
            "validation": meta.validation,
            "calibration": meta.calibration.model_dump() if meta.calibration else None,
        }
        if result.baseline:
            doc["baseline"] = {
                "summary": _clean(result.baseline.summary),
                "per_class": {c: _clean(d) for c, d in result.baseline.per_class.items()},
            }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=1))
    if report_dir:
        from model.report import write_report

        path = write_report(report_dir, result, labels, scores)
        Console(stderr=True).print(f"report: {path}")
    return result


def _table(result: Evaluation, title: str) -> Table:
    table = Table(title=title)
    cols = ["class", "n", "image AUROC", "pixel AUROC", "AUPRO", "escape", "false reject"]
    for c in cols:
        table.add_column(c, justify="right" if c != "class" else "left")
    rows = [(cls, d) for cls, d in result.per_class.items()]
    rows.append(("all", {**result.summary, "n": result.summary["n_images"]}))
    for cls, d in rows:
        table.add_row(
            cls,
            str(d["n"]),
            *(_fmt(d.get(k)) for k in ("image_auroc", "pixel_auroc", "aupro", "escape_rate", "false_reject_rate")),
            style="bold" if cls == "all" else None,
        )
    return table


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _operating_line(s: dict) -> str:
    line = f"F1-max {_fmt(s['f1_max'])}  accuracy {_fmt(s['accuracy'])}  threshold {s['threshold']:.4f}"
    if "false_reject_rate_outside_roi_good" in s:
        line += (
            f"  false reject: plain good {_fmt(s['false_reject_rate_plain_good'])}, "
            f"good with defects outside the ROI {_fmt(s['false_reject_rate_outside_roi_good'])}"
        )
    if "best_escape_at_frr_0.02" in s:  # its own line: rich wraps long ones
        line += f"\nbest escape at FRR 0.02, any threshold: {_fmt(s['best_escape_at_frr_0.02'])}"
    return line


def print_summary(result: Evaluation) -> None:
    console = Console()
    console.print(_table(result, f"GRD-Net evaluation ({result.summary['checkpoint']})"))
    console.print(_operating_line(result.summary))
    if result.validation:
        v = result.validation["kept"]
        console.print(
            f"self-validation at training (no labels): epoch {v['epoch']}, image AUROC {_fmt(v['image_auroc'])}, "
            f"pixel AUROC {_fmt(v['pixel_auroc'])}" + (" [COLLAPSED]" if v["collapsed"] else "")
        )
    b = result.baseline
    if b is not None:
        console.print(_table(b, f"classical baseline: {b.summary['checkpoint']}"))
        console.print(_operating_line(b.summary))
        console.print(
            f"image AUROC: GRD-Net {_fmt(result.summary['image_auroc'])} vs classical {_fmt(b.summary['image_auroc'])}"
        )
