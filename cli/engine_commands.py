"""The engines' commands: export, INT8, TensorRT plans and the speed benches.

Each command imports what it runs only when it runs (``run_line.py --help`` stays instant).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.registry import bundled_checkpoint, command
from engines.select import KINDS


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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register this group's subcommands on ``sub``."""
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
    bench.add_argument("--checkpoint", default=str(bundled_checkpoint()))
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
