"""The model's commands: synthetic products, training, evaluation, the recipe benchmark and calibration.

Each command imports what it runs only when it runs (``run_line.py --help`` stays instant).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.registry import command
from model.errors import InputError


@command("synth")
def cmd_synth(a: argparse.Namespace) -> int:
    from model.synth_dataset import write_product_dataset

    counts = write_product_dataset(Path(a.out), a.train, a.test, a.seed, a.size, a.product)
    print(f"wrote {sum(counts.values())} images to {a.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


@command("train")
def cmd_train(a: argparse.Namespace) -> int:
    from model.candidates import candidates_table, train_candidates
    from model.config import load_config_file, load_preset
    from model.train import train

    cfg = load_config_file(Path(a.config)) if a.config else load_preset(a.preset)
    if a.epochs is not None:
        cfg.train.epochs = a.epochs
    if a.bottleneck:
        cfg.net.bottleneck = a.bottleneck
    if a.roi_variant:
        cfg.loss.roi_variant = a.roi_variant
    options = {"whole_image_roi": a.whole_image_roi, "resize": a.resize}
    if a.candidates < 1:
        raise InputError(f"--candidates {a.candidates}: give 1 or more runs")
    if a.candidates == 1:
        meta = train(Path(a.data), Path(a.out), cfg, a.max_minutes, a.seed, **options)
    else:
        seeds = list(range(a.seed, a.seed + a.candidates))
        where = a.config or f"preset {a.preset}"
        meta, rows = train_candidates(Path(a.data), Path(a.out), cfg, seeds, a.max_minutes, where=where, **options)
        print(candidates_table(rows, meta.training["chosen_seed"]))
    t, c = meta.training, meta.calibration
    print(
        f"wrote {a.out}: id {meta.id}, {t['epochs_run']} epochs in {t['seconds']:.0f} s ({t['stop']}), "
        f"{t['s_per_step']:.2f} s/step"
    )
    if meta.validation:
        v = meta.validation["kept"]
        print(
            f"self-validation (held-out good + synthetic marks, no labels): kept epoch {v['epoch']}, "
            f"image AUROC {v['image_auroc']:.3f}, pixel AUROC {v['pixel_auroc']:.3f}"
        )
        if v["collapsed"]:
            print("WARNING: collapsed run: the eval-mode map lights good images too; do not deploy this checkpoint")
    if c:
        esc = "-" if c.val_escape_rate is None else f"{c.val_escape_rate:.3f}"
        print(
            f"threshold {meta.threshold:.4f} (good q{c.quantile:g} {c.good_quantile_score:.4f} + {c.margin:g} x spread;"
            f" on validation: false reject {c.val_false_reject_rate:.3f}, escape {esc})"
        )
    if meta.baseline:
        b = meta.baseline
        print(f"classical baseline (median {b.kernel}x{b.kernel}): self-validation image AUROC {b.val_image_auroc:.3f}")
    return 0


@command("evaluate")
def cmd_evaluate(a: argparse.Namespace) -> int:
    from model.evaluate import evaluate_checkpoint, print_summary

    result = evaluate_checkpoint(
        Path(a.data),
        Path(a.checkpoint),
        use_test_roi=a.use_test_roi,
        json_path=Path(a.json) if a.json else None,
        report_dir=Path(a.report) if a.report else None,
        baseline=a.baseline == "classic",
        resize=a.resize,
    )
    print_summary(result)
    return 0


@command("model-bench")
def cmd_model_bench(a: argparse.Namespace) -> int:
    from model.config import load_config_file, load_preset
    from model.recipe_bench import BenchPlan, run

    cfg = load_config_file(Path(a.config)) if a.config else load_preset(a.preset)
    families = [f for f in a.families.split(",") if f]
    seeds = [int(s) for s in a.seeds.split(",") if s]
    plan = BenchPlan(
        minutes=a.max_minutes,
        train_seed=a.train_seed,
        eval_seed=a.eval_seed,
        eval_images=a.eval_images,
        calibrate_images=a.calibrate_images,
        calibrate_seed=a.calibrate_seed,
        reuse_checkpoints=a.reuse,
    )
    rows = run(Path(a.out), families, cfg, seeds, plan)
    print((Path(a.out) / "results.md").read_text())
    print(f"{len(rows)} trainings; results in {Path(a.out) / 'results.json'}")
    return 0


@command("calibrate")
def cmd_calibrate(a: argparse.Namespace) -> int:
    from model.recalibrate import recalibrate

    meta, old = recalibrate(Path(a.checkpoint), Path(a.good), Path(a.out), a.quantile, a.margin)
    c = meta.calibration
    print(
        f"wrote {a.out} ({meta.id}): threshold {old:.4f} -> {meta.threshold:.4f} from {c.n_good} good frames "
        f"(their {c.quantile} quantile {c.good_quantile_score:.4f}, median {c.good_median_score:.4f}; "
        f"{c.val_false_reject_rate:.3f} of them above it)"
    )
    return 0


@command("revalidate")
def cmd_revalidate(a: argparse.Namespace) -> int:
    import json

    from model.revalidate import HOLDOUT, revalidate

    r = revalidate(Path(a.checkpoint), Path(a.good), a.per_image, a.seed)

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    spread = r[f"spread_of_a_{HOLDOUT}_image_holdout"]
    print(
        f"{r['checkpoint']}: self-validation on {r['good_frames']} good frames, {r['marked_frames']} marked: "
        f"image AUROC {fmt(r['image_auroc'])}, pixel AUROC {fmt(r['pixel_auroc'])} (at training: "
        f"{fmt(r['training_self_validation'])}; a {HOLDOUT}-image holdout spreads by {fmt(spread)})"
    )
    print(
        "  per mark: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in r["per_kind"].items())
        + f"; darker {fmt(r['darker'])}, brighter {fmt(r['brighter'])}"
    )
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands on ``sub``."""
    synth = sub.add_parser("synth", help="write a synthetic product family as a dataset (docs/design.md 3.2)")
    synth.add_argument("--out", required=True)
    synth.add_argument("--product", default="vials", choices=["vials", "ampoule", "blister"], help="product family")
    synth.add_argument("--train", type=int, default=200, help="train/good images")
    synth.add_argument("--test", type=int, default=120, help="test images (half good, half defective)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", type=int, default=256, help="rendered side in px")

    train = sub.add_parser("train", help="train GRD-Net; writes exactly --out (safetensors + JSON metadata)")
    train.add_argument("--data", required=True)
    train.add_argument("--out", required=True)
    train.add_argument("--preset", default="cpu", help="model preset in config/models (cpu, paper)")
    train.add_argument("--config", help="a model config YAML instead of a preset")
    train.add_argument("--epochs", type=int)
    train.add_argument("--max-minutes", type=float, help="stop at the last epoch boundary inside this budget")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--candidates",
        type=int,
        default=1,
        help="train N runs (seeds --seed .. --seed+N-1, each under --max-minutes) and keep the one self-validation "
        "ranks first",
    )
    train.add_argument("--bottleneck", choices=["crae", "drae"])
    train.add_argument("--roi-variant", type=int, choices=[1, 2, 3, 4], help="ROI loss ablation case (default 2)")
    train.add_argument("--whole-image-roi", action="store_true", help="ignore ROI masks: ROI = the whole image")
    train.add_argument("--resize", action="store_true", help="scale images of another size to the model's native size")

    evaluate = sub.add_parser("evaluate", help="image/pixel AUROC, AUPRO, F1-max and operating-point rates")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--json", help="write summary, per-class metrics and one row per test image")
    evaluate.add_argument("--report", help="folder for map overlays and the ROC plot")
    evaluate.add_argument(
        "--use-test-roi",
        action="store_true",
        help="multiply maps by the test ROI masks (default: the learned attention alone)",
    )
    evaluate.add_argument("--baseline", choices=["classic"], help="also score the stored classical peer, side by side")
    evaluate.add_argument(
        "--resize", action="store_true", help="scale images of another size to the model's native size"
    )

    model_bench = sub.add_parser(
        "model-bench", help="recipe benchmark: families x training seeds, model beside the baseline"
    )
    model_bench.add_argument(
        "--out", required=True, help="folder for renders, checkpoints, results.json and results.md"
    )
    model_bench.add_argument("--families", default="vials,ampoule,blister")
    model_bench.add_argument("--seeds", default="0,1,2", help="training seeds")
    model_bench.add_argument("--max-minutes", type=float, default=10.0)
    model_bench.add_argument("--train-seed", type=int, default=0, help="render seed of the training sets")
    model_bench.add_argument("--eval-seed", type=int, default=11, help="render seed of the evaluation sets")
    model_bench.add_argument("--eval-images", type=int, default=600, help="test images per evaluation set (half good)")
    model_bench.add_argument(
        "--calibrate-images", type=int, default=200, help="good frames `calibrate` sets a line threshold from (0: off)"
    )
    model_bench.add_argument("--calibrate-seed", type=int, default=21, help="render seed of those good frames")
    model_bench.add_argument(
        "--reuse", action="store_true", help="evaluate checkpoints already in --out instead of training"
    )
    model_bench.add_argument("--preset", default="cpu")
    model_bench.add_argument("--config", help="a model config YAML instead of a preset")

    calibrate = sub.add_parser("calibrate", help="set a checkpoint's threshold from good frames it never trained on")
    calibrate.add_argument("--checkpoint", required=True)
    calibrate.add_argument("--good", required=True, help="folder of good frames (or a dataset root: its train/good)")
    calibrate.add_argument("--out", required=True, help="checkpoint to write (may be --checkpoint itself)")
    calibrate.add_argument(
        "--quantile", type=float, help="of the good scores: 1 - target FRR (default: the checkpoint's)"
    )
    calibrate.add_argument(
        "--margin", type=float, help="added above it, in units of (quantile - median) (default 0.25)"
    )

    revalidate = sub.add_parser(
        "revalidate", help="a checkpoint's self-validation again, on good frames it never trained on (no labels)"
    )
    revalidate.add_argument("--checkpoint", required=True)
    revalidate.add_argument("--good", required=True, help="folder of good frames (or a dataset root: its train/good)")
    revalidate.add_argument("--per-image", type=int, default=2, help="validation marks drawn on each good frame")
    revalidate.add_argument("--seed", type=int, default=0, help="where the marks fall and what they look like")
    revalidate.add_argument("--json", help="write the figures here")
