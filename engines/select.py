"""Choosing and opening an engine: ``auto`` = TensorRT when a GPU and TensorRT are present, PyTorch on CUDA
when a GPU but no TensorRT is, else the faster of ONNX Runtime and OpenVINO on this CPU (measured once per host
and batch, engines/cpu_choice.py).

Compiled artefacts for a checkpoint are cached under ``cache_dir/<checkpoint id>/`` so the line exports
(and builds) once per model, not once per start.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from engines.base import Engine, EngineError
from model.errors import InputError

KINDS = ("auto", "tensorrt", "torch-cuda", "onnxruntime", "openvino", "onnxruntime-int8", "openvino-int8", "torch")
DEFAULT_CACHE = Path(os.environ.get("GRDNET_CACHE", Path.home() / ".cache" / "grdnet-line"))


def tensorrt_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def choose_kind(requested: str, gpu: bool, tensorrt: bool) -> str:
    """Pure: which engine ``requested`` means on a machine with/without a GPU and TensorRT."""
    if requested not in KINDS:
        raise InputError(f"engine: expected one of {', '.join(KINDS)}, got {requested!r}")
    if requested == "auto":
        return ("tensorrt" if tensorrt else "torch-cuda") if gpu else "onnxruntime"
    if requested == "tensorrt" and not (gpu and tensorrt):
        missing = "a GPU" if not gpu else "TensorRT"
        raise EngineError(f"engine tensorrt: this machine has no {missing}; use --engine onnxruntime or auto")
    if requested == "torch-cuda" and not gpu:
        raise EngineError("engine torch-cuda: this machine has no GPU; use --engine onnxruntime or auto")
    return requested


def detect_kind(requested: str) -> str:
    from engines.cuda_buffers import gpu_available

    trt = tensorrt_installed()
    if trt:
        return choose_kind(requested, gpu_available(), trt)
    import torch  # without TensorRT the GPU path is torch's own

    return choose_kind(requested, torch.cuda.is_available(), trt)


CACHE_MAX_BATCH = 64  # the graph's batch axis is dynamic: one export serves every engine up to this


def ensure_onnx(checkpoint: Path, cache_dir: Path, max_batch: int, log=print) -> Path:
    """The checkpoint's ONNX graph from the cache, exported (with its parity check) when missing, stale or
    exported for fewer frames per batch than asked."""
    from engines.export import export_onnx
    from engines.sidecar import read_onnx_sidecar
    from model.checkpoint import read_meta

    meta = read_meta(checkpoint)
    path = Path(cache_dir) / meta.id / "model.onnx"
    try:
        if read_onnx_sidecar(path).max_batch >= max_batch:
            return path
    except EngineError as exc:
        if path.exists():  # a cached graph that fails its sha256 or sidecar check is never used: made again
            log(f"cached graph refused ({exc}): exporting again")
    log(f"exporting {checkpoint} to {path}")
    export_onnx(checkpoint, path, max(max_batch, CACHE_MAX_BATCH), log=log)
    return path


def open_engine(
    kind: str,
    checkpoint: Path,
    cache_dir: Path,
    max_batch: int = 16,
    threads: int | None = None,
    plan: Path | None = None,
    log=print,
) -> Engine:
    """Open the engine ``kind`` (after ``auto`` resolution) for ``checkpoint``."""
    resolved = detect_kind(kind)
    if resolved == "torch":
        from engines.torch_engine import TorchEngine

        return TorchEngine(checkpoint, max_batch, threads)
    if resolved == "torch-cuda":
        from engines.torch_cuda_engine import TorchCudaEngine

        engine = TorchCudaEngine(checkpoint, max_batch)
        if "why" in engine.parity:
            log(engine.parity["why"])
        return engine
    onnx_path = ensure_onnx(checkpoint, cache_dir, max_batch, log)
    if resolved.endswith("-int8"):  # the graph `quantize` made and gated; refused with what to run when missing
        from engines.int8 import int8_path, read_int8_sidecar

        read_int8_sidecar(int8_path(onnx_path))
        return cpu_engine(resolved, onnx_path, threads, max_batch)
    if resolved in ("openvino", "onnxruntime"):
        engine = cpu_engine(resolved, onnx_path, threads, max_batch)
        if kind == "auto":
            return fastest_cpu_engine(engine, onnx_path, threads, max_batch, log)
        return engine
    from engines.tensorrt_engine import TensorRTEngine

    if plan is None:  # the cached plan, built again whenever it no longer matches graph, TensorRT, GPU or batch
        plan = onnx_path.with_suffix(".plan")
        why = cached_plan_stale(plan, onnx_path, max_batch)
        if why:
            from engines.tensorrt_build import build_gated_plan

            log(f"building the TensorRT plan ({why})")
            build_gated_plan(onnx_path, plan, max_batch, log=log)
    return TensorRTEngine(plan)


def cached_plan_stale(plan: Path, onnx_path: Path, max_batch: int) -> str | None:
    """Why the cached plan must be built again on this machine (None: use it)."""
    from engines import cuda_buffers as cb
    from engines.sidecar import plan_stale_reason, read_onnx_sidecar
    from engines.tensorrt_engine import import_tensorrt

    if not plan.is_file():
        return f"{plan} not built yet"
    gpu, capability = cb.gpu_info()
    onnx_meta, trt_version = read_onnx_sidecar(onnx_path), import_tensorrt().__version__
    return plan_stale_reason(plan, onnx_meta, max_batch, trt_version, gpu, capability)


def cpu_engine(kind: str, onnx_path: Path, threads: int | None, max_batch: int) -> Engine:
    """ONNX Runtime or OpenVINO on the FP32 graph, or (``-int8``) on its INT8 copy beside it."""
    if kind.endswith("-int8"):
        from engines.int8 import int8_path

        onnx_path = int8_path(onnx_path)
    if kind.startswith("openvino"):
        from engines.openvino_engine import OpenVinoEngine

        engine: Engine = OpenVinoEngine(onnx_path, threads, max_batch)
    else:
        from engines.ort_engine import OnnxRuntimeEngine

        engine = OnnxRuntimeEngine(onnx_path, threads, max_batch)
    engine.name = kind  # reports and logs tell the INT8 graph from the FP32 one
    return engine


def fastest_cpu_engine(ort_engine: Engine, onnx_path: Path, threads: int | None, max_batch: int, log=print) -> Engine:
    """``auto`` without a GPU: the fastest here of ONNX Runtime, OpenVINO where it is installed and agrees, and
    the INT8 graph in either where ``quantize`` made one (it passed its accuracy gate then)."""
    from engines.cpu_choice import choose_cpu_engine
    from engines.int8 import int8_ready
    from engines.openvino_engine import openvino_installed

    runtimes = ["onnxruntime", "openvino"] if openvino_installed() else ["onnxruntime"]
    kinds = runtimes[1:] + ([f"{r}-int8" for r in runtimes] if int8_ready(onnx_path) else [])
    engines = {"onnxruntime": ort_engine}
    for kind in kinds:
        try:
            engines[kind] = cpu_engine(kind, onnx_path, threads, max_batch)
        except EngineError as exc:
            log(f"{kind} not used: {exc}")
    if len(engines) == 1:
        return ort_engine
    return engines[choose_cpu_engine(engines, onnx_path, threads, max_batch or ort_engine.max_batch, log)]
