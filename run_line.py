#!/usr/bin/env python3
"""The one command-line entry of the GRD-Net inspection line (docs/design.md 3.1). Thin: parses, delegates.

Every command exits 0 on success and non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from engines.select import KINDS  # light: no runtime is imported until an engine is opened
from model.errors import GrdnetError, InputError, first_error

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return deco


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


@command("export")
def cmd_export(a: argparse.Namespace) -> int:
    from engines.export import export_onnx

    meta = export_onnx(Path(a.checkpoint), Path(a.out), a.max_batch, fp16=a.fp16)
    print(f"wrote {a.out} ({meta.precision}, opset {meta.opset}, sha256 {meta.sha256[:12]}) and its sidecar")
    return 0


@command("quantize")
def cmd_quantize(a: argparse.Namespace) -> int:
    from engines.int8 import quantize_checkpoint
    from engines.select import DEFAULT_CACHE

    cache = Path(a.cache) if a.cache else DEFAULT_CACHE
    meta = quantize_checkpoint(Path(a.checkpoint), Path(a.data), Path(a.eval), cache, a.calibration_images)
    acc = meta.accuracy
    print(
        f"INT8 graph kept (image AUROC {acc['image_auroc_fp32']:.4f} -> {acc['image_auroc_int8']:.4f}); "
        "--engine onnxruntime-int8|openvino-int8 use it, and auto weighs it against FP32"
    )
    return 0


@command("build-engine")
def cmd_build_engine(a: argparse.Namespace) -> int:
    from engines.tensorrt_build import build_plan

    build_plan(Path(a.onnx), Path(a.out), a.fp16, a.max_batch, Path(a.timing_cache) if a.timing_cache else None)
    return 0


@command("bench")
def cmd_bench(a: argparse.Namespace) -> int:
    import json

    from engines.bench import bench_engines, open_all
    from engines.select import DEFAULT_CACHE

    if a.gpu_check:
        from engines.gpu_check import run_gpu_check

        run_gpu_check(Path(a.gpu_check), [1, 2, 4, 8, 16, 32, 64], a.seconds)
        print(f"wrote {Path(a.gpu_check) / 'gpu_check.json'} and gpu_check.md")
        return 0
    if not a.engine_only:
        from pipeline.bench import BenchSettings, print_tables, run_bench, write_json

        sweeps = () if a.sweep == "none" else tuple(x.strip() for x in a.sweep.split(","))
        settings = BenchSettings(
            checkpoint=a.checkpoint,
            cache_dir=str(DEFAULT_CACHE),
            engine=a.engine,
            threads=a.threads,
            cameras=a.cameras,
            max_batch=a.max_batch,
            max_wait_ms=a.max_wait_ms,
            default_rate=a.rate,
            seconds=a.point_seconds,
            sweeps=sweeps,
            redis_url=a.redis_url,
        )
        result = run_bench(settings)
        print_tables(result)
        if a.json:
            write_json(result, Path(a.json))
        if a.report:
            from pipeline.bench_report import write_report

            write_report(result, Path(a.report))
        return 0
    batches = [int(b) for b in a.batches.split(",")]
    engines = open_all(Path(a.checkpoint), DEFAULT_CACHE, max(batches), a.threads)
    result = bench_engines(engines, batches, a.seconds)
    for name, best in result["best"].items():
        ratio = result.get("speedup_vs_torch_at_best_batch", {}).get(name)
        print(
            f"best {name}: {best['fps']:.1f} frames/s at batch {best['batch']}"
            + (f" ({ratio:.2f}x torch eager)" if ratio else "")
        )
    if a.json:
        Path(a.json).write_text(json.dumps({"engine_only": result}, indent=1))
    return 0


@command("demo")
def cmd_demo(a: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(
        a.frames,
        a.fps,
        a.cameras,
        a.redis_url,
        a.engine,
        a.summary_json,
        carousel=not a.no_carousel,
        page=None if a.no_page else a.page_port,
    )


@command("run")
def cmd_run(a: argparse.Namespace) -> int:
    from pipeline.config import load_line_config
    from pipeline.process_setup import setup_logging
    from pipeline.supervisor import Supervisor

    setup_logging("supervisor")
    cfg = load_line_config(Path(a.config))
    if a.require_challenge:
        from pipeline.challenge import require_challenge

        rec = require_challenge(cfg)
        print(f"challenge of {rec['time']} passed ({rec['defects_ejected']}/{rec['defects']} defects ejected)")
    return Supervisor(cfg, role=a.role).run_forever()


@command("challenge")
def cmd_challenge(a: argparse.Namespace) -> int:
    from pipeline.challenge import run_challenge
    from pipeline.config import load_line_config

    rec = run_challenge(load_line_config(Path(a.config)), Path(a.set), a.camera, a.max_frr)
    print(
        f"challenge {'PASSED' if rec['passed'] else 'FAILED'}: model {rec['model']} at threshold "
        f"{rec['threshold']:.4f}, {rec['defects_ejected']}/{rec['defects']} defects ejected, false-reject rate "
        f"{rec['false_reject_rate']:.3f} (limit {rec['max_false_reject_rate']:.3f}); record in "
        f"{Path(load_line_config(Path(a.config)).challenge.records_dir) / 'latest.json'}"
    )
    for u in rec["units"]:
        if u["outcome"] not in ("passed", "ejected"):
            print(f"  {u['outcome']}: {u['path']} ({u['label']}, {u['reason']})")
    return 0 if rec["passed"] else 1


@command("chaos")
def cmd_chaos(a: argparse.Namespace) -> int:
    import json

    from pipeline.chaos import chaos_on_local_redis
    from pipeline.process_setup import setup_logging

    setup_logging("chaos")
    report = chaos_on_local_redis(a.checkpoint, a.fps, a.seconds)
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if a.json:
        Path(a.json).write_text(text)
    return 0 if report["promise_kept"] else 1


@command("unit-bench")
def cmd_unit_bench(a: argparse.Namespace) -> int:
    from pipeline.process_setup import setup_logging
    from pipeline.unit_bench import run_unit_bench, write_unit_bench

    setup_logging("unit-bench")
    rates = [float(x) for x in a.rates.split(",")]
    result = run_unit_bench(a.checkpoint, rates, a.seconds, a.redis_url, a.engine)
    best = result["max_units_per_minute"]
    print(f"highest rate with no unit undecided and none ejected for lateness: {best} units/min")
    if a.json:
        write_unit_bench(result, Path(a.json))
    return 0


@command("unit")
def cmd_unit(a: argparse.Namespace) -> int:
    import json

    import redis

    from pipeline.audit import trace_unit
    from pipeline.config import load_line_config
    from pipeline.redis_conn import connect

    cfg = load_line_config(Path(a.config))
    if cfg.carousel is None:
        raise InputError(f"{a.config}: no carousel section: the line decides frames, not units")
    try:
        t = trace_unit(connect(cfg.redis), cfg.redis.stream, cfg.carousel.stream, a.id, a.run)
    except redis.ConnectionError as exc:
        raise InputError(f"Redis unavailable: {exc}") from None
    print(json.dumps(t, indent=1))
    return 0


@command("keys")
def cmd_keys(a: argparse.Namespace) -> int:
    from pipeline.curve import make_keys

    public, secret = make_keys(Path(a.out), a.name)
    print(f"wrote {public} (public: give it to the peers) and {secret} (secret, mode 600: keep it on this host)")
    return 0


@command("record")
def cmd_record(a: argparse.Namespace) -> int:
    from pipeline.recording import record

    n = record(
        out=Path(a.out),
        frames=a.frames,
        source=a.source,
        fps=a.fps,
        cameras=a.cameras,
        defect_rate=a.defect_rate,
        seed=a.seed,
        cti=a.cti,
        device=a.device,
        path=a.path,
    )
    print(f"recorded {n} frames to {a.out}")
    return 0


@command("replay")
def cmd_replay(a: argparse.Namespace) -> int:
    from pipeline.recording import replay

    return replay(Path(a.dir), a.rate, a.redis_url, a.engine, a.summary_json, page=None if a.no_page else a.page_port)


def _line_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="a local redis-server is started when none answers here"
    )
    p.add_argument("--engine", default="auto", choices=KINDS)
    p.add_argument("--summary-json", help="write the run's summary here")
    p.add_argument("--page-port", type=int, default=8088, help="the live line page (a free port if this one is taken)")
    p.add_argument("--no-page", action="store_true", help="run without the live line page")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_line.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command")

    demo = sub.add_parser("demo", help="the embedded default: simulated vial cameras -> worker -> Redis")
    demo.add_argument("--frames", type=int, default=60, help="total frames over all cameras")
    # the model judges 256 px frames at their native resolution: ~5 frames/s on 2 CPU cores, so 2 x 1.5 fps
    # keeps the demo real-time with room for the camera processes' rendering
    demo.add_argument("--fps", type=float, default=1.5, help="per camera")
    demo.add_argument("--cameras", type=int, default=2)
    demo.add_argument(
        "--no-carousel", action="store_true", help="frames only: no carousel, no unit decisions (docs/design.md 3.9)"
    )
    _line_flags(demo)

    run = sub.add_parser("run", help="the live line as configured")
    run.add_argument("--config", default="config/line.yaml")
    run.add_argument("--require-challenge", action="store_true", help="refuse to start without a passed challenge")
    run.add_argument(
        "--role", default="all", choices=["all", "workers", "cameras"], help="this host's part of a split line"
    )

    challenge = sub.add_parser("challenge", help="known good and defective units through the configured line")
    challenge.add_argument(
        "--set", required=True, help="dataset folder (docs/design.md 3.2): test/good and test/<defect>"
    )
    challenge.add_argument("--config", default="config/line.yaml")
    challenge.add_argument("--camera", help="whose settings judge the set (default: the first camera)")
    challenge.add_argument("--max-frr", type=float, help="override challenge.max_frr")

    chaos = sub.add_parser("chaos", help="the line under kills, a hang and a Redis restart, then an audit (3.8)")
    chaos.add_argument("--seconds", type=float, default=26.0)
    chaos.add_argument("--fps", type=float, default=1.0, help="per camera (2 cameras)")
    chaos.add_argument("--checkpoint", default=str(_bundled()))
    chaos.add_argument("--json")

    unit_bench = sub.add_parser("unit-bench", help="units per minute on a simulated carousel (docs/design.md 3.9)")
    unit_bench.add_argument("--rates", default="120,240,360,480", help="units per minute, comma separated")
    unit_bench.add_argument("--seconds", type=float, default=20.0, help="carousel time per rate")
    unit_bench.add_argument("--checkpoint", default=str(_bundled()))
    unit_bench.add_argument("--engine", default="auto", choices=KINDS)
    unit_bench.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    unit_bench.add_argument("--json")

    unit = sub.add_parser("unit", help="one unit's decision and the frame verdicts behind it (docs/design.md 3.9)")
    unit.add_argument("id", type=int)
    unit.add_argument("--run", type=int, help="the run (tick 0, ns); default: the newest that decided the unit")
    unit.add_argument("--config", default="config/line.yaml")

    keys = sub.add_parser("keys", help="make a ZeroMQ CURVE key pair for worker.curve (docs/design.md 3.3)")
    keys.add_argument("--out", required=True, help="folder for NAME.key and NAME.key_secret")
    keys.add_argument("--name", required=True, help="e.g. worker or camera")

    record = sub.add_parser("record", help="write a recorded stream (docs/design.md 3.4) from a source")
    record.add_argument("--out", required=True)
    record.add_argument("--frames", type=int, required=True, help="total over all cameras")
    record.add_argument("--source", default="synthetic", choices=["synthetic", "genicam", "replay"])
    record.add_argument("--fps", type=float, default=10.0)
    record.add_argument("--cameras", type=int, default=1, help="synthetic cameras")
    record.add_argument("--defect-rate", type=float, default=0.1)
    record.add_argument("--seed", type=int, default=0)
    record.add_argument("--cti", help="GenTL producer (default: the simulated viky.cti)")
    record.add_argument("--device", help="GenICam device: serial number, id, or #index")
    record.add_argument("--path", help="replay source: a recorded stream or an image folder")

    replay = sub.add_parser("replay", help="play a recorded stream or image folder through the line")
    replay.add_argument("dir")
    replay.add_argument("--rate", default="realtime", help="realtime | max | frames per second")
    _line_flags(replay)

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

    export = sub.add_parser("export", help="checkpoint -> ONNX inference graph, verified against PyTorch")
    export.add_argument("--checkpoint", required=True)
    export.add_argument("--out", required=True)
    export.add_argument("--max-batch", type=int, default=16)
    export.add_argument("--fp16", action="store_true", help="compute in half inside the graph (TensorRT 11 FP16)")

    quantize = sub.add_parser("quantize", help="INT8 copy of the cached graph for CPU engines, kept only if accurate")
    quantize.add_argument("--checkpoint", required=True)
    quantize.add_argument("--data", required=True, help="the product's training set: train/good calibrates")
    quantize.add_argument("--eval", required=True, help="a labelled set training never saw: its test split gates")
    quantize.add_argument("--cache", help="engine cache the line uses (default ~/.cache/grdnet-line, GRDNET_CACHE)")
    quantize.add_argument("--calibration-images", type=int, default=64)

    build_engine = sub.add_parser(
        "build-engine", help="ONNX graph -> TensorRT plan + sidecar (needs a GPU and TensorRT)"
    )
    build_engine.add_argument("--onnx", required=True)
    build_engine.add_argument("--out", required=True)
    build_engine.add_argument("--fp16", action="store_true")
    build_engine.add_argument("--max-batch", type=int, default=16)
    build_engine.add_argument("--timing-cache", help="timing cache file reused between builds (default: beside --out)")

    bench = sub.add_parser("bench", help="latency and throughput (--engine-only: the engines alone)")
    bench.add_argument("--engine-only", action="store_true")
    bench.add_argument(
        "--gpu-check",
        metavar="DIR",
        help="GPU host: auto's choice, parity of every GPU engine vs ONNX Runtime CPU, speed by batch 1..64 for the "
        "cpu and paper presets -> DIR/gpu_check.json and .md",
    )
    bench.add_argument("--json")
    bench.add_argument("--checkpoint", default=str(_bundled()))
    bench.add_argument("--batches", default="1,2,4,8,16")
    bench.add_argument("--threads", type=int, help="CPU threads per engine (default: all cores)")
    bench.add_argument("--seconds", type=float, default=2.0, help="--engine-only: minimum timing per engine and batch")
    bench.add_argument("--report", help="folder for a Markdown summary and PNG plots")
    bench.add_argument("--engine", default="auto", choices=KINDS)
    bench.add_argument("--cameras", type=int, default=2)
    bench.add_argument(
        "--rate", type=float, default=3.0, help="default offered rate, frames/s over all cameras (the demo's)"
    )
    bench.add_argument("--max-batch", type=int, default=4)
    bench.add_argument("--max-wait-ms", type=float, default=2.0)
    bench.add_argument("--point-seconds", type=float, default=8.0, help="how long each offered rate runs")
    bench.add_argument(
        "--sweep", default="rate,batch,wait", help="rate, batch, wait, ledger, page (comma separated) or none"
    )
    bench.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    return p


def _bundled() -> Path:
    from model.checkpoint import BUNDLED_CHECKPOINT

    return BUNDLED_CHECKPOINT


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["demo", *argv]  # the embedded default: no command, or only the demo's flags
    args = build_parser().parse_args(argv)
    name = args.command
    try:
        return COMMANDS[name](args)
    except (GrdnetError, OSError) as exc:  # bad input or a machine that lacks something; the rest is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a config the command built from its flags
        print(f"error: {first_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
