"""``run_line.py model-bench``: the recipe benchmark over product families and training seeds.

For each family: render a training set and an evaluation set at seeds of their own (never the ones used to
choose the recipe, when the caller says so), train the preset once per training seed under the same budget,
evaluate each model without test ROI masks beside the classical baseline, and write one JSON and one Markdown
table with the mean and the worst seed. The figures the README reports come from this command.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from model.config import GRDNetConfig
from model.evaluate import evaluate_checkpoint
from model.synth_dataset import write_product_dataset
from model.train import train


def _render(root: Path, family: str, split: str, seed: int, n_train: int, n_test: int) -> Path:
    out = root / f"{family}_{split}_seed{seed}"
    if not (out / ("train" if n_train else "test")).is_dir():
        write_product_dataset(out, n_train, n_test, seed, product=family)
    return out


def run_family(
    root: Path, family: str, cfg: GRDNetConfig, seeds: list[int], minutes: float, train_seed: int, eval_seed: int
) -> list[dict]:
    """One row per training seed: the evaluation summary, per class, the self-validation and the baseline."""
    data = _render(root, family, "train", train_seed, 200, 0)
    test = _render(root, family, "eval", eval_seed, 0, 200)
    rows = []
    for seed in seeds:
        ckpt = root / f"{family}_seed{seed}.safetensors"
        meta = train(data, ckpt, cfg.model_copy(deep=True), max_minutes=minutes, seed=seed, progress=False)
        ev = evaluate_checkpoint(test, ckpt, baseline=True, json_path=root / f"{family}_seed{seed}.json")
        kept = meta.validation["kept"] if meta.validation else {}
        rows.append(
            {
                "family": family,
                "seed": seed,
                "checkpoint": meta.id,
                "epochs": meta.training["epochs_run"],
                "kept_epoch": kept.get("epoch"),
                "seconds": meta.training["seconds"],
                "s_per_step": meta.training["s_per_step"],
                "self_val_image_auroc": kept.get("image_auroc"),
                "collapsed": kept.get("collapsed"),
                "threshold": meta.threshold,
                **{k: ev.summary.get(k) for k in _SUMMARY},
                "per_class_image_auroc": {c: d["image_auroc"] for c, d in ev.per_class.items() if c != "good"},
                "baseline_image_auroc": ev.baseline.summary["image_auroc"] if ev.baseline else None,
                "baseline_escape_rate": ev.baseline.summary["escape_rate"] if ev.baseline else None,
                "baseline_false_reject_rate": ev.baseline.summary["false_reject_rate"] if ev.baseline else None,
            }
        )
        (root / "rows.jsonl").open("a").write(json.dumps(rows[-1]) + "\n")
    return rows


_SUMMARY = (
    "image_auroc",
    "pixel_auroc",
    "escape_rate",
    "false_reject_rate",
    "false_reject_rate_plain_good",
    "false_reject_rate_outside_roi_good",
)


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
        lines.append(
            f"| {family} | **mean** | "
            + " | ".join(f"{mean[k]:.3f}" if k in mean else "-" for _, k in cols[1:-1])
            + f" | | worst seed {worst['seed']}: image AUROC {worst['image_auroc']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def run(
    root: Path,
    families: list[str],
    cfg: GRDNetConfig,
    seeds: list[int],
    minutes: float,
    train_seed: int,
    eval_seed: int,
) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for family in families:
        rows += run_family(root, family, cfg, seeds, minutes, train_seed, eval_seed)
        (root / "results.json").write_text(json.dumps(rows, indent=1))
        (root / "results.md").write_text(markdown(rows))
    return rows
