"""The TensorRT engine's own code on a CPU, against a stand-in that follows the TensorRT 10 and CUDA runtime
interfaces (tests/fake_tensorrt.py; the network inside is the real inference graph in ONNX Runtime): I/O found
from the engine, copies sized by dtype, refused input shapes, overlapping buffer sets, maps fetched per row,
close; and around it: a cached plan rebuilt when it no longer matches, a timing cache TensorRT refuses."""

import json
import sys

import numpy as np
import pytest

from engines.base import EngineError
from engines.export import PARITY_LIMIT, parity_frames
from engines.ort_engine import OnnxRuntimeEngine
from engines.sidecar import (
    PlanMeta,
    plan_stale_reason,
    read_onnx_sidecar,
    read_plan_sidecar,
    sha256_file,
    sidecar_path,
)
from engines.tensorrt_build import attach_timing_cache
from tests import fake_tensorrt as fake


def _profiles(size: int, channels: int, max_batch: int, roi_min: int | None = None) -> dict:
    roi_min = roi_min or 1
    return {
        "frames": [(1, size, size, channels), (1, size, size, channels), (max_batch, size, size, channels)],
        "roi": [(roi_min, size, size), (roi_min, size, size), (max_batch, size, size)],
    }


def _write_plan(path, onnx_path, max_batch: int, version="10.9.0", precision="fp32", error=0.0, roi_min=None):
    """A plan file and its sidecar; the plan's bytes say what engine the fake runtime makes of it."""
    onnx = read_onnx_sidecar(onnx_path)
    spec = {"max_batch": max_batch, "precision": precision, "error": error, "roi_min": roi_min, "sha": onnx.sha256}
    path.write_bytes(json.dumps(spec).encode())
    meta = PlanMeta(
        checkpoint_id=onnx.checkpoint_id,
        image_size=onnx.image_size,
        channels=onnx.channels,
        threshold=onnx.threshold,
        onnx_sha256=onnx.sha256,
        plan_sha256=sha256_file(path),
        tensorrt_version=version,
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
        precision=precision,
        profile={"min": [1], "opt": [1], "max": [max_batch, onnx.image_size, onnx.image_size, onnx.channels]},
    )
    sidecar_path(path).write_text(meta.model_dump_json())
    return path


@pytest.fixture
def trt_runtime(tiny_onnx, monkeypatch):
    """Install the fakes; returns a function writing a plan whose fake engine has the given profile/dtypes."""
    fake.patch_cuda(monkeypatch)
    meta = read_onnx_sidecar(tiny_onnx)

    def engine_for_plan(plan: bytes):
        spec = json.loads(plan)
        profiles = _profiles(meta.image_size, meta.channels, spec["max_batch"], spec["roi_min"])
        dtype = fake.DataType.HALF if spec["precision"] == "fp16" else fake.DataType.FLOAT
        return fake.FakeEngine(str(tiny_onnx), profiles, dtype, spec["error"])

    monkeypatch.setitem(sys.modules, "tensorrt", fake.fake_tensorrt_module(engine_for_plan))

    def make(tmp_path, max_batch=3, precision="fp32", roi_min=None):
        return _write_plan(tmp_path / "m.plan", tiny_onnx, max_batch, precision=precision, roi_min=roi_min)

    return make


@pytest.fixture(scope="module")
def ort(tiny_onnx):
    return OnnxRuntimeEngine(tiny_onnx, threads=1)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_io_comes_from_the_engine_and_results_match_onnxruntime(trt_runtime, ort, tmp_path, precision):
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=3, precision=precision))
    assert engine.max_batch == 3, "the max batch is the profile's, not a number assumed by the code"
    assert engine.io["scores"].dtype == (np.float16 if precision == "fp16" else np.float32)
    tol = 1e-3 if precision == "fp16" else 1e-6
    frames = parity_frames(engine.image_size, engine.channels, 3)
    for b in (1, 3, 2):
        scores, maps = engine.infer(frames[:b])
        ref_scores, ref_maps = ort.infer(frames[:b])
        assert scores.dtype == np.float32 and maps.shape == ref_maps.shape
        assert np.abs(scores - ref_scores).max() <= tol and np.abs(maps - ref_maps).max() <= tol
    # copies are sized by the tensors' own dtype: batch 2 of float16 scores is 4 bytes, of float32 8
    assert fake.COPIES[-2:] == [
        ("d2h", engine.last.device["scores"].ptr, 2 * engine.io["scores"].dtype.itemsize),
        ("d2h", engine.last.device["maps"].ptr, 2 * engine.io["maps"].row_bytes),
    ]
    engine.close()


def test_a_plan_that_is_not_the_inference_graph_is_refused(trt_runtime, tmp_path, tiny_onnx):
    from engines.tensorrt_engine import TensorRTEngine

    plan = trt_runtime(tmp_path)
    meta = read_onnx_sidecar(tiny_onnx)
    engine = fake.FakeEngine(str(tiny_onnx), _profiles(meta.image_size, meta.channels, 2))
    engine.names = ["frames", "roi", "scores", "heatmap"]
    sys.modules["tensorrt"].Runtime.deserialize_cuda_engine = lambda self, b: engine
    with pytest.raises(EngineError, match="expected inputs .*outputs"):
        TensorRTEngine(plan)


def test_an_input_shape_outside_the_profile_is_an_error_not_ignored(trt_runtime, tmp_path):
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=4, roi_min=2))  # roi's profile starts at batch 2
    frames = parity_frames(engine.image_size, engine.channels, 1)
    with pytest.raises(EngineError, match=r"refused input shape \(1, .*'roi'"):
        engine.infer(frames)
    engine.close()


def test_batches_overlap_on_their_own_buffer_sets(trt_runtime, ort, tmp_path):
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=2), buffer_sets=2)
    s = engine.image_size
    frames = parity_frames(s, engine.channels, 4)
    first = engine.submit(frames[:2], np.full((2, s, s), 255, np.uint8))
    staged_frames, staged_roi = engine.staging(2)  # the next set's pinned input memory, written in place
    staged_frames[...], staged_roi[...] = frames[2:], 255
    second = engine.submit(staged_frames, staged_roi)
    assert first is not second and first.copies is not second.copies
    # both batches are enqueued and nothing has run: submit never waits for the GPU
    assert first.copies.pending and second.copies.pending and engine.compute.pending == 4  # 2 x (wait, execute)
    ran = engine.context.executions  # the CUDA graphs' warm-up enqueues at start
    with pytest.raises(RuntimeError, match="collect one before submitting more"):
        engine.staging(1)
    # the second batch's inputs are copied in without waiting for the first batch's execution
    second.inputs_copied.synchronize()
    assert engine.context.executions == ran and first.copies.pending
    s1, _ = engine.collect(first)
    assert engine.context.executions == ran + 1, "collecting the first batch does not wait for the second"
    s2, _ = engine.collect(second)
    ref, _ = ort.infer(frames)
    assert np.abs(np.concatenate([s1, s2]) - ref).max() <= 1e-6, "each batch ran on its own buffers"
    engine.close()


def test_gpu_check_keeps_every_buffer_set_busy_and_collects_all(trt_runtime, tmp_path):
    from engines.gpu_check import pipelined_fps
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=2), buffer_sets=3)
    frames = parity_frames(engine.image_size, engine.channels, 2)
    assert pipelined_fps(engine, frames, 2, seconds=0.2) > 0
    assert all(bs.rows == 0 for bs in engine.sets), "nothing left in flight"
    engine.close()


def test_each_buffer_set_and_padded_batch_size_runs_as_one_captured_graph(trt_runtime, ort, tmp_path):
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=4), buffer_sets=2)
    assert sorted(engine.graphs) == [(k, b) for k in (0, 1) for b in (1, 2, 4)] and engine.graph_error is None
    frames = parity_frames(engine.image_size, engine.channels, 3)
    scores, maps = engine.infer(frames)  # 3 frames run in the batch-4 graph, the 4th row inspects nothing
    ref_scores, ref_maps = ort.infer(frames)
    assert np.abs(scores - ref_scores).max() <= 1e-6 and np.abs(maps - ref_maps).max() <= 1e-6
    assert engine.graphs[(0, 4)].launches == 1 and engine.last.host["roi"].array[3].max() == 0
    copied = [c for c in fake.COPIES if c[1] == engine.last.device["scores"].ptr]
    assert copied[-1] == ("d2h", engine.last.device["scores"].ptr, 3 * 4), "only the real rows come back"
    assert "CUDA graphs" in engine.describe()
    engine.close()


def test_a_runtime_that_cannot_capture_runs_plain_enqueues_and_says_why(trt_runtime, ort, tmp_path):
    from engines.tensorrt_engine import TensorRTEngine

    fake.FakeCapturedGraph.fail = "operation not permitted when stream is capturing"
    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=4))
    assert engine.graphs == {} and "not permitted" in engine.graph_error and "no CUDA graphs" in engine.describe()
    frames = parity_frames(engine.image_size, engine.channels, 3)
    assert np.abs(engine.infer(frames)[0] - ort.infer(frames)[0]).max() <= 1e-6
    engine.close()


def test_maps_come_back_only_for_the_rows_asked(trt_runtime, ort, tmp_path):
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=3))
    frames = parity_frames(engine.image_size, engine.channels, 3)
    scores, maps = engine.infer(frames, want_maps=False)
    assert maps is None
    maps_ptr = engine.last.device["maps"].ptr
    assert not [c for c in fake.COPIES if c[1] == maps_ptr], "no map was copied for a batch without rejects"
    rows = engine.maps_of([2, 0])
    assert [c for c in fake.COPIES if c[1] == maps_ptr] == [("d2h", maps_ptr, engine.io["maps"].row_bytes)] * 2
    _, ref_maps = ort.infer(frames)
    assert np.abs(rows - ref_maps[[2, 0]]).max() <= 1e-6
    engine.close()


def test_close_releases_contexts_before_their_memory_and_twice_is_harmless(trt_runtime, tmp_path):
    from engines.tensorrt_engine import TensorRTEngine

    engine = TensorRTEngine(trt_runtime(tmp_path, max_batch=2))
    s = engine.image_size
    engine.submit(parity_frames(s, engine.channels, 1), np.zeros((1, s, s), np.uint8))
    sets, compute = list(engine.sets), engine.compute
    pointers = [b.ptr for bs in sets for b in (*bs.host.values(), *bs.device.values())]
    engine.close()  # with a batch in flight: finished first; the fake refuses to free memory a context holds
    engine.close()
    assert not set(pointers) & set(fake.MEMORY), "every buffer freed"
    assert all(bs.copies.handle is None and bs.done.handle is None for bs in sets) and compute.handle is None


# --- the cached plan and the timing cache -------------------------------------------------------------------------
def test_cached_plan_is_stale_after_a_new_graph_a_larger_batch_or_another_tensorrt(tiny_onnx, tmp_path):
    plan = _write_plan(tmp_path / "m.plan", tiny_onnx, max_batch=8)
    onnx = read_onnx_sidecar(tiny_onnx)
    assert plan_stale_reason(plan, onnx, 8, "10.9.0", "NVIDIA H100", "9.0") is None
    assert "built from another graph" in plan_stale_reason(
        plan, onnx.model_copy(update={"sha256": "f" * 64}), 8, "10.9.0", "NVIDIA H100", "9.0"
    )
    assert "holds 8 frames a batch, 16 wanted" in plan_stale_reason(plan, onnx, 16, "10.9.0", "NVIDIA H100", "9.0")
    assert "TensorRT 10.9.0" in plan_stale_reason(plan, onnx, 8, "10.12.0", "NVIDIA H100", "9.0")
    plan.write_bytes(b"truncated")
    assert "sha256 differs" in plan_stale_reason(plan, onnx, 8, "10.9.0", "NVIDIA H100", "9.0")


def test_open_engine_rebuilds_a_stale_cached_plan_and_reuses_a_good_one(trt_runtime, tiny_onnx, tmp_path, monkeypatch):
    import engines.tensorrt_build as tb
    from engines.select import open_engine

    cache = tmp_path / "cache"
    onnx_meta = read_onnx_sidecar(tiny_onnx)
    graph_dir = cache / onnx_meta.checkpoint_id
    graph_dir.mkdir(parents=True)
    for src in (tiny_onnx, sidecar_path(tiny_onnx)):
        (graph_dir / src.name.replace(tiny_onnx.stem, "model")).write_bytes(src.read_bytes())
    graph = graph_dir / "model.onnx"
    trt_runtime(tmp_path)  # the fake runtime
    builds = []

    def build_plan(onnx_path, out, fp16=False, max_batch=16, timing_cache=None, log=print):
        builds.append(max_batch)
        return read_plan_sidecar(_write_plan(out, onnx_path, max_batch, precision="fp16" if fp16 else "fp32"))

    monkeypatch.setattr(tb, "build_plan", build_plan)
    monkeypatch.setattr("engines.select.ensure_onnx", lambda checkpoint, cache_dir, max_batch, log: graph)
    stale = graph.with_suffix(".plan")
    _write_plan(stale, tiny_onnx, 4, version="10.3.0")  # from an older TensorRT
    lines: list[str] = []
    open_engine("tensorrt", tmp_path / "unused.safetensors", cache, max_batch=4, log=lines.append).close()
    assert builds == [4] and "built for TensorRT 10.3.0" in lines[0]
    built = read_plan_sidecar(stale)
    assert built.tensorrt_version == "10.9.0" and built.precision == "fp16", "auto: FP16 on an sm 9.0 GPU"
    assert built.parity["max_score_delta"] <= PARITY_LIMIT and built.parity["verdicts_equal"] is True
    open_engine("tensorrt", tmp_path / "unused.safetensors", cache, max_batch=4, log=lines.append).close()
    assert builds == [4], "a plan that matches is reused"


@pytest.mark.parametrize(
    ("version", "fp16_error", "tried"),
    [
        ("10.9.0", 0.0, ["fp16"]),  # FP16 within the gate: kept
        ("10.9.0", 5e-3, ["fp16", "fp32"]),  # FP16 beyond it: said, FP32 built
        ("11.0.0", 0.0, ["fp32"]),  # TensorRT 11 has no FP16 flag: FP32 from an FP32 graph
    ],
)
def test_auto_plan_is_fp16_only_within_the_parity_gate(
    trt_runtime, tiny_onnx, tmp_path, monkeypatch, version, fp16_error, tried
):
    import engines.tensorrt_build as tb

    sys.modules["tensorrt"].__version__ = version
    built = []

    def build_plan(onnx_path, out, fp16=False, max_batch=16, timing_cache=None, log=print):
        built.append("fp16" if fp16 else "fp32")
        error = fp16_error if fp16 else 0.0
        path = _write_plan(out, onnx_path, max_batch, version, "fp16" if fp16 else "fp32", error)
        return read_plan_sidecar(path)

    monkeypatch.setattr(tb, "build_plan", build_plan)
    lines: list[str] = []
    meta = tb.build_gated_plan(tiny_onnx, tmp_path / "auto.plan", 4, log=lines.append)
    assert built == tried and meta.precision == tried[-1]
    assert read_plan_sidecar(tmp_path / "auto.plan").parity == meta.parity, "the figures are in the sidecar"
    assert bool(lines) == (len(tried) == 2) and all("limit" in line for line in lines)


def test_auto_plan_that_fails_the_gate_in_fp32_is_refused(trt_runtime, tiny_onnx, tmp_path, monkeypatch):
    import engines.tensorrt_build as tb

    sys.modules["tensorrt"].__version__ = "11.0.0"
    monkeypatch.setattr(
        tb,
        "build_plan",
        lambda onnx_path, out, fp16=False, max_batch=16, timing_cache=None, log=print: read_plan_sidecar(
            _write_plan(out, onnx_path, max_batch, "11.0.0", error=0.01)
        ),
    )
    with pytest.raises(EngineError, match="differs from ONNX Runtime"):
        tb.build_gated_plan(tiny_onnx, tmp_path / "bad.plan", 4)
    assert not (tmp_path / "bad.plan").exists(), "a plan that fails the gate is never left for the line"


class _Config:
    """IBuilderConfig's timing-cache calls: TensorRT refuses (returns False) a cache from another build."""

    def __init__(self, accepts: bytes) -> None:
        self.accepts = accepts
        self.set_with: list[bytes] = []

    def create_timing_cache(self, blob: bytes):
        return blob

    def set_timing_cache(self, cache: bytes, ignore_mismatch: bool) -> bool:
        assert ignore_mismatch is False, "a mismatched cache must never be forced on the builder"
        self.set_with.append(cache)
        return cache in (b"", self.accepts)


def test_timing_cache_from_another_tensorrt_is_replaced_and_said(tmp_path):
    path = tmp_path / "timing.cache"
    lines: list[str] = []
    assert attach_timing_cache(_Config(b"ours"), path, lines.append) and not lines  # none yet: empty cache
    path.write_bytes(b"ours")
    assert attach_timing_cache(_Config(b"ours"), path, lines.append) and not lines
    path.write_bytes(b"theirs")
    config = _Config(b"ours")
    assert attach_timing_cache(config, path, lines.append) is False
    assert config.set_with == [b"theirs", b""] and "another TensorRT or GPU" in lines[0]
