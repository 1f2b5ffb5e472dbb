"""``run_line.py build-engine``: ONNX graph -> TensorRT plan + sidecar (TensorRT 10 and 11).

Optimisation profile min 1 / opt typical / max B; a timing cache on disk reused between builds; the
build's phases shown as it goes. TensorRT 11 has no FP16 builder flag: FP16 there means an FP16 graph
(``export --fp16``) built strongly typed. TensorRT 10 may use the flag on an FP32 graph.
"""

from __future__ import annotations

import time
from pathlib import Path

from engines.base import EngineError
from engines.sidecar import PlanMeta, read_onnx_sidecar, sha256_file, sidecar_path, write_atomically
from model.errors import InputError

WORKSPACE_BYTES = 4 << 30


def trt_major(version: str) -> int:
    return int(version.split(".")[0])


def build_settings(major: int, graph_precision: str, fp16: bool) -> tuple[bool, bool]:
    """(strongly_typed, fp16_flag) for a TensorRT major version, the graph's precision and --fp16."""
    if graph_precision == "fp16":
        return True, False  # the graph's types decide; precision lives in the ONNX
    if fp16 and major >= 11:
        raise EngineError(
            "TensorRT 11 has no FP16 builder flag: export an FP16 graph "
            "(`run_line.py export --fp16`) and build from that"
        )
    if major >= 11:
        return True, False
    return False, fp16


def profile_shapes(
    size: int, channels: int, max_batch: int, opt_batch: int | None = None
) -> dict[str, dict[str, tuple[int, ...]]]:
    """min 1, opt = the typical batch (half of max, at least 1, at most 8 unless max is smaller), max B."""
    if max_batch < 1:
        raise InputError(f"max batch: expected >= 1, got {max_batch}")
    opt = opt_batch or max(1, min(8, max_batch // 2 or 1))
    if not 1 <= opt <= max_batch:
        raise InputError(f"opt batch {opt} outside 1..{max_batch}")
    out = {}
    for name, tail in (("frames", (size, size, channels)), ("roi", (size, size))):
        out[name] = {"min": (1, *tail), "opt": (opt, *tail), "max": (max_batch, *tail)}
    return out


def _progress_monitor(trt, log):
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.depth: dict[str, int] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.depth[phase_name] = self.depth.get(parent_phase, -1) + 1 if parent_phase else 0
            log(f"{'  ' * self.depth[phase_name]}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step):
            return True  # never cancel

        def phase_finish(self, phase_name):
            self.depth.pop(phase_name, None)

    return Monitor()


def attach_timing_cache(config, cache_path: Path, log=print) -> bool:
    """Give the builder the timing cache on disk; True when it was taken. A cache from another TensorRT version
    or GPU is refused by TensorRT (``set_timing_cache`` returns False): then the build starts from an empty
    cache, says so, and the file is replaced by this machine's cache after the build."""
    blob = cache_path.read_bytes() if cache_path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return True
    if not blob:
        raise EngineError("TensorRT could not create an empty timing cache")
    log(f"timing cache {cache_path} was made by another TensorRT or GPU: not used, replaced after this build")
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineError("TensorRT could not create an empty timing cache")
    return False


def build_plan(
    onnx_path: Path, out: Path, fp16: bool = False, max_batch: int = 16, timing_cache: Path | None = None, log=print
) -> PlanMeta:
    from engines import cuda_buffers as cb
    from engines.tensorrt_engine import import_tensorrt

    onnx_path, out = Path(onnx_path), Path(out)
    onnx_meta = read_onnx_sidecar(onnx_path)  # integrity first: a graph that is not what was exported is refused
    trt = import_tensorrt()
    strongly_typed, fp16_flag = build_settings(trt_major(trt.__version__), onnx_meta.precision, fp16)
    gpu, capability = cb.gpu_info()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT cannot parse the graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    shapes = profile_shapes(onnx_meta.image_size, onnx_meta.channels, max_batch)
    profile = builder.create_optimization_profile()
    for name, s in shapes.items():
        profile.set_shape(name, s["min"], s["opt"], s["max"])
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache or out.parent / "timing.cache")
    attach_timing_cache(config, cache_path, log)
    config.progress_monitor = _progress_monitor(trt, log)
    t0 = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT build failed (see the messages above)")
    write_atomically(cache_path, bytes(config.get_timing_cache().serialize()))
    write_atomically(out, bytes(serialized))
    precision = "fp16" if (fp16_flag or onnx_meta.precision == "fp16") else "fp32"
    meta = PlanMeta(
        checkpoint_id=onnx_meta.checkpoint_id,
        image_size=onnx_meta.image_size,
        channels=onnx_meta.channels,
        threshold=onnx_meta.threshold,
        onnx_sha256=onnx_meta.sha256,
        plan_sha256=sha256_file(out),
        tensorrt_version=trt.__version__,
        gpu_name=gpu,
        compute_capability=capability,
        precision=precision,
        profile={k: list(v) for k, v in shapes["frames"].items()},
    )
    write_atomically(sidecar_path(out), meta.model_dump_json(indent=1).encode())
    log(
        f"built {out} in {time.monotonic() - t0:.0f} s ({precision}, profile 1/{shapes['frames']['opt'][0]}/"
        f"{max_batch}, timing cache {cache_path})"
    )
    return meta


def build_gated_plan(onnx_path: Path, out: Path, max_batch: int, log=print) -> PlanMeta:
    """The plan ``auto`` builds and caches: FP16 where the GPU has fast half math (compute capability 7.0+) and
    TensorRT takes the FP16 flag (10.x; 11 needs an FP16 graph, which export's parity gate refuses today), kept
    only if it matches ONNX Runtime on CPU within export's ``PARITY_LIMIT`` with the same verdicts; else FP32,
    which must pass the same gate. The figures go into the plan's sidecar."""
    from dataclasses import asdict

    from engines import cuda_buffers as cb
    from engines.base import has_fast_half
    from engines.export import PARITY_LIMIT, compare, parity_frames
    from engines.ort_engine import OnnxRuntimeEngine
    from engines.tensorrt_engine import TensorRTEngine, import_tensorrt

    _, capability = cb.gpu_info()
    fast_fp16 = has_fast_half(int(capability.split(".")[0])) and trt_major(import_tensorrt().__version__) < 11
    reference = OnnxRuntimeEngine(onnx_path)
    frames = parity_frames(reference.image_size, reference.channels, min(4, max_batch))
    why = ""
    for fp16 in (True, False) if fast_fp16 else (False,):
        if why:
            log(f"{why}: building FP32")
        meta = build_plan(onnx_path, out, fp16=fp16, max_batch=max_batch, log=log)
        engine = TensorRTEngine(out)
        try:
            parity = compare(reference.infer, engine.infer, frames, meta.threshold)
        finally:
            engine.close()
        meta.parity = asdict(parity)
        write_atomically(sidecar_path(out), meta.model_dump_json(indent=1).encode())
        if parity.passes():
            return meta
        why = f"{meta.precision} plan differs from ONNX Runtime by {parity.worst:.1e} (limit {PARITY_LIMIT})"
        why += "" if parity.verdicts_equal else ", verdicts differ"
    out.unlink(missing_ok=True)  # even FP32 fails the gate: no plan is left for the line
    sidecar_path(out).unlink(missing_ok=True)
    raise EngineError(f"{out}: {why}: not used; run_line.py bench --gpu-check shows the figures")
