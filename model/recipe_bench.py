"""``run_line.py model-bench``: the recipe benchmark over product families and training seeds.

For each family: render a training set and an evaluation set at seeds of their own (never the ones used to
choose the recipe, when the caller says so), train the preset once per training seed under the same budget,
evaluate each model without test ROI masks beside the classical baseline, and write one JSON and one Markdown
table with the mean and the worst seed. The figures the README reports come from this command.

The evaluation set holds 600 images by default: on 200 (50 plain good), renders of the same product at other
seeds moved one checkpoint's image AUROC by up to 0.09 and its false-reject rate moves in steps of 0.02. Each
model is also judged at a threshold ``calibrate`` sets from good frames of the product it never trained on,
as a line would after its first shift, and at the best threshold any rule could choose (what the scores allow).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.candidates import validation_rank
from model.checkpoint import CheckpointMeta, read_meta
from model.config import GRDNetConfig
from model.evaluate import evaluate_checkpoint, operating_rates
from model.recalibrate import recalibrate
from model.synth_dataset import write_product_dataset
from model.train import train


def _render(root: Path, family: str, split: str, seed: int, n_train: int, n_test: int, size: int) -> Path:
    out = root / (f"{family}_{split}_seed{seed}" + (f"_n{n_test}" if n_test not in (0, 200) else ""))
    if not (out / ("train" if n_train else "test")).is_dir():
        write_product_dataset(out, n_train, n_test, seed, size=size, product=family)
    return out


@dataclass(frozen=True)
class BenchPlan:
    """What one benchmark renders and how: the evaluation set's size (its false-reject rates count plain good
    images in steps of 4 / n), the good frames a line would calibrate on, and whether checkpoints already in
    the folder are evaluated again instead of trained (same seeds, same renders of training)."""

    minutes: float = 10.0
    train_seed: int = 0
    eval_seed: int = 11
    eval_images: int = 600
    calibrate_images: int = 200
    calibrate_seed: int = 21
    reuse_checkpoints: bool = False
    image_size: int = 256  # the renders' side: the preset's native size


def _trained(root: Path, family: str, ckpt: Path, cfg: GRDNetConfig, seed: int, plan: BenchPlan) -> CheckpointMeta:
    if plan.reuse_checkpoints and ckpt.is_file():
        return read_meta(ckpt)
    data = _render(root, family, "train", plan.train_seed, 200, 0, plan.image_size)
    return train(data, ckpt, cfg.model_copy(deep=True), max_minutes=plan.minutes, seed=seed, progress=False)


def run_family(root: Path, family: str, cfg: GRDNetConfig, seeds: list[int], plan: BenchPlan) -> list[dict]:
    """One row per training seed: the evaluation summary, per class, the self-validation and the baseline,
    and the operating point again after ``calibrate`` on good frames of the product (when asked)."""
    size = plan.image_size
    test = _render(root, family, "eval", plan.eval_seed, 0, plan.eval_images, size)
    good = None
    if plan.calibrate_images:
        good = _render(root, family, "calib", plan.calibrate_seed, plan.calibrate_images, 0, size)
    rows = []
    for seed in seeds:
        ckpt = root / f"{family}_seed{seed}.safetensors"
        meta = _trained(root, family, ckpt, cfg, seed, plan)
        ev = evaluate_checkpoint(test, ckpt, baseline=True, json_path=root / f"{family}_seed{seed}.json")
        kept = meta.validation["kept"] if meta.validation else {}
        row = {
            "family": family,
            "seed": seed,
            "checkpoint": meta.id,
            "eval_images": ev.summary["n_images"],
            "epochs": meta.training["epochs_run"],
            "kept_epoch": kept.get("epoch"),
            "seconds": meta.training["seconds"],
            "s_per_step": meta.training["s_per_step"],
            "self_val_image_auroc": kept.get("image_auroc"),
            "self_val_pixel_auroc": kept.get("pixel_auroc"),
            "collapsed": kept.get("collapsed"),
            "threshold": meta.threshold,
            **{k: ev.summary.get(k) for k in _SUMMARY},
            "per_class_image_auroc": {c: d["image_auroc"] for c, d in ev.per_class.items() if c != "good"},
            "baseline_image_auroc": ev.baseline.summary["image_auroc"] if ev.baseline else None,
            "baseline_escape_rate": ev.baseline.summary["escape_rate"] if ev.baseline else None,
            "baseline_false_reject_rate": ev.baseline.summary["false_reject_rate"] if ev.baseline else None,
        }
        if good is not None:  # same scores, the threshold `calibrate` sets from the product's good frames
            line_meta, _ = recalibrate(ckpt, good, root / f"{family}_seed{seed}_line.safetensors")
            scores = np.array([im["score"] for im in ev.images])
            labels = (np.array([im["label"] for im in ev.images]) != "good").astype(int)
            rates = operating_rates(ev.samples, labels, scores, line_meta.threshold)
            row.update({f"line_{k}": rates.get(k) for k in ("threshold", *_OPERATING)})
            row["line_calibration_frames"] = plan.calibrate_images
        rows.append(row)
        with (root / "rows.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
    return rows


_OPERATING = ("escape_rate", "false_reject_rate_plain_good", "false_reject_rate_outside_roi_good")
_SUMMARY = ("image_auroc", "pixel_auroc", "false_reject_rate", "best_escape_at_frr_0.02", *_OPERATING)


def self_validated_pick(rows: list[dict]) -> dict | None:
    """The seed ``train --candidates`` would keep of these (its ``validation_rank`` on each row's figures); None
    when a row has no self-validation."""
    if any(r.get("self_val_image_auroc") is None for r in rows):
        return None

    def kept(r: dict) -> dict:  # rows of benchmarks before 2026-12-06 carry no pixel figure: it then never decides
        pixel = r.get("self_val_pixel_auroc")
        return {"collapsed": r.get("collapsed"), "image_auroc": r["self_val_image_auroc"], "pixel_auroc": pixel or 0.0}

    return max(rows, key=lambda r: validation_rank(kept(r)))


def markdown(rows: list[dict]) -> str:
    """Per family: every seed, then the mean and the worst seed (lowest image AUROC)."""
    cols = [
        ("seed", "seed"),
        ("image AUROC", "image_auroc"),
        ("pixel AUROC", "pixel_auroc"),
        ("self-val", "self_val_image_auroc"),
        ("escape", "escape_rate"),
        ("FRR plain", "false_reject_rate_plain_good"),
        ("FRR outside ROI", "false_reject_rate_outside_roi_good"),
        ("escape, line-calibrated", "line_escape_rate"),
        ("FRR plain, line-calibrated", "line_false_reject_rate_plain_good"),
        ("best escape at FRR 0.02", "best_escape_at_frr_0.02"),
        ("classic AUROC", "baseline_image_auroc"),
        ("epochs (kept)", "epochs"),
    ]
    lines = [
        "| family | " + " | ".join(c for c, _ in cols) + " | per class image AUROC |",
        "|---" * (len(cols) + 2) + "|",
    ]

    def fmt(r: dict, key: str) -> str:
        v = r.get(key)
        if key == "epochs":
            return f"{v} ({r.get('kept_epoch')})"
        return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

    for family in dict.fromkeys(r["family"] for r in rows):
        fam = [r for r in rows if r["family"] == family]
        for r in fam:
            per = ", ".join(f"{c} {v:.3f}" for c, v in r["per_class_image_auroc"].items())
            lines.append(f"| {family} | " + " | ".join(fmt(r, k) for _, k in cols) + f" | {per} |")
        mean = {k: statistics.fmean(r[k] for r in fam) for _, k in cols[1:-1] if all(r.get(k) is not None for r in fam)}
        worst = min(fam, key=lambda r: r["image_auroc"])
        picked = self_validated_pick(fam)
        pick = "" if picked is None else f"; self-validation keeps seed {picked['seed']}: {picked['image_auroc']:.3f}"
        lines.append(
            f"| {family} | **mean** | "
            + " | ".join(f"{mean[k]:.3f}" if k in mean else "-" for _, k in cols[1:-1])
            + f" | | worst seed {worst['seed']}: image AUROC {worst['image_auroc']:.3f}{pick} |"
        )
    return "\n".join(lines) + "\n"


def run(root: Path, families: list[str], cfg: GRDNetConfig, seeds: list[int], plan: BenchPlan) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for family in families:
        rows += run_family(root, family, cfg, seeds, plan)
        (root / "results.json").write_text(json.dumps(rows, indent=1))
        (root / "results.md").write_text(markdown(rows))
    return rows
