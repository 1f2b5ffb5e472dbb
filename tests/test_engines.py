"""Engines on CPU: ONNX Runtime vs PyTorch parity, input validation, sidecars, and everything around
TensorRT that needs no GPU (choice, profile, build settings, plan compatibility)."""

import json
import sys

import numpy as np
import onnx
import pytest

from engines.base import EngineError
from engines.export import PARITY_LIMIT, export_onnx, parity_frames
from engines.ort_engine import OnnxRuntimeEngine
from engines.select import choose_kind
from engines.sidecar import PlanMeta, check_plan_matches, read_onnx_sidecar, read_plan_sidecar, sidecar_path
from engines.tensorrt_build import build_settings, profile_shapes
from engines.torch_engine import TorchEngine
from model.checkpoint import BUNDLED_CHECKPOINT, read_meta
from tests.conftest import assert_one_line_error, run_cli

# ONNX Runtime and PyTorch run the same float32 graph; measured deltas on the shipped model are ~1e-6, the
# contract is 1e-5
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def engines(tiny_checkpoint, tiny_onnx):
    return TorchEngine(tiny_checkpoint, max_batch=4), OnnxRuntimeEngine(tiny_onnx, threads=1)


@pytest.fixture(scope="module")
def shipped_engines(bundled_onnx):
    return TorchEngine(BUNDLED_CHECKPOINT, max_batch=4), OnnxRuntimeEngine(bundled_onnx, threads=1)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_pytorch(shipped_engines, batch):
    torch_engine, ort_engine = shipped_engines
    size = torch_engine.meta.image_size
    frames = parity_frames(size, 3, batch, seed=batch)
    roi = np.full((batch, size, size), 255, np.uint8)
    roi[:, :, :20] = 0  # a static mask: part of the frame is not inspected
    s_t, m_t = torch_engine.infer(frames, roi)
    s_o, m_o = ort_engine.infer(frames, roi)
    assert s_o.shape == (batch,) and m_o.shape == (batch, size, size) and s_o.dtype == np.float32
    assert np.abs(s_t - s_o).max() < TOLERANCE and np.abs(m_t - m_o).max() < TOLERANCE
    assert (m_o[:, :, :20] == 0).all(), "the static ROI zeroes the map outside it"
    thr = torch_engine.meta.threshold
    assert np.array_equal(s_t > thr, s_o > thr)


def test_maps_only_when_asked(engines):
    _, ort_engine = engines
    scores, maps = ort_engine.infer(parity_frames(64, 3, 2), want_maps=False)
    assert maps is None and scores.shape == (2,)


@pytest.mark.parametrize(
    "frames,message",
    [
        (np.zeros((1, 64, 64, 3), np.float32), "expected dtype uint8, got float32"),
        (np.zeros((1, 32, 64, 3), np.uint8), r"expected shape \[B, 64, 64, 3\], got \[1, 32, 64, 3\]"),
        (np.zeros((1, 64, 64, 1), np.uint8), "expected 3 channels, got 1"),
        (np.zeros((5, 64, 64, 3), np.uint8), "expected batch 1..4, got 5"),
    ],
)
def test_bad_frames_raise_value_error_naming_expected_and_got(engines, frames, message):
    for engine in engines:
        with pytest.raises(ValueError, match=message):
            engine.infer(frames)


def test_sidecar_records_the_graph(tiny_onnx, tiny_checkpoint):
    meta = read_onnx_sidecar(tiny_onnx)
    ck = read_meta(tiny_checkpoint)
    assert meta.checkpoint_id == ck.id and meta.threshold == ck.threshold and meta.image_size == 64
    assert meta.parity["max_score_delta"] <= PARITY_LIMIT
    graph = onnx.load(str(tiny_onnx))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [i.name for i in graph.graph.input] == ["frames", "roi"] and dims[0].dim_param  # dynamic batch
    assert [o.name for o in graph.graph.output] == ["scores", "maps"]


def test_corrupt_or_mismatched_onnx_is_refused(tiny_onnx, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(tiny_onnx.read_bytes()[:-10])
    sidecar_path(bad).write_text(sidecar_path(tiny_onnx).read_text())
    with pytest.raises(EngineError, match="sha256 differs"):
        OnnxRuntimeEngine(bad)
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(tiny_onnx.read_bytes())
    with pytest.raises(EngineError, match="sidecar missing"):
        OnnxRuntimeEngine(lone)


def test_cli_export_missing_checkpoint_is_one_line(tmp_path):
    r = run_cli("export", "--checkpoint", str(tmp_path / "x.safetensors"), "--out", str(tmp_path / "m.onnx"))
    assert_one_line_error(r, "checkpoint not found")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.xfail(
    strict=True,
    raises=ValueError,
    reason="known defect (issue 14): models trained with the self-validated recipe have BatchNorm gains of ~40 on "
    "near-constant channels, and the FP16 graph's maps then differ from PyTorch by 2e-3 to 3e-2 (> the 1e-3 gate), "
    "so export refuses to write it; strict: this fails loudly once FP16 export passes the gate again",
)
def test_fp16_graph_computes_in_half_and_stays_close(tiny_checkpoint, tmp_path):
    out = tmp_path / "half.onnx"
    meta = export_onnx(tiny_checkpoint, out, max_batch=2, fp16=True, log=lambda *_: None)
    assert meta.precision == "fp16"
    graph = onnx.load(str(out))
    conv_weights = {n.input[1] for n in graph.graph.node if n.op_type == "Conv"}
    dtypes = {i.data_type for i in graph.graph.initializer if i.name in conv_weights}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    half = OnnxRuntimeEngine(out, threads=1)
    full = TorchEngine(tiny_checkpoint, max_batch=2)
    frames = parity_frames(64, 3, 2)
    assert np.abs(half.infer(frames)[0] - full.infer(frames)[0]).max() < 5e-3


def test_auto_choice():
    assert choose_kind("auto", gpu=True, tensorrt=True) == "tensorrt"
    assert choose_kind("auto", gpu=False, tensorrt=True) == "onnxruntime"
    assert choose_kind("auto", gpu=True, tensorrt=False) == "torch-cuda", "a GPU host runs today with pip's torch"
    assert choose_kind("torch", gpu=False, tensorrt=False) == "torch"
    with pytest.raises(EngineError, match="has no TensorRT"):
        choose_kind("tensorrt", gpu=True, tensorrt=False)
    with pytest.raises(ValueError, match="expected one of"):
        choose_kind("cuda", gpu=True, tensorrt=True)


def test_build_settings_per_tensorrt_version():
    assert build_settings(10, "fp32", fp16=True) == (False, True)  # TRT 10: the FP16 flag
    assert build_settings(10, "fp32", fp16=False) == (False, False)
    assert build_settings(10, "fp16", fp16=True) == (True, False)  # FP16 graph: strongly typed
    assert build_settings(11, "fp16", fp16=True) == (True, False)
    assert build_settings(11, "fp32", fp16=False) == (True, False)
    with pytest.raises(EngineError, match="TensorRT 11 has no FP16 builder flag"):
        build_settings(11, "fp32", fp16=True)


def test_profile_shapes():
    p = profile_shapes(128, 3, 16)
    assert p["frames"] == {"min": (1, 128, 128, 3), "opt": (8, 128, 128, 3), "max": (16, 128, 128, 3)}
    assert p["roi"]["max"] == (16, 128, 128)
    assert profile_shapes(64, 1, 1)["frames"]["opt"] == (1, 64, 64, 1)
    with pytest.raises(ValueError):
        profile_shapes(64, 3, 0)


def _plan(tmp_path, **over):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan bytes")
    from engines.sidecar import sha256_file

    meta = PlanMeta(
        checkpoint_id="x",
        image_size=64,
        channels=3,
        threshold=0.5,
        onnx_sha256="a",
        plan_sha256=sha256_file(plan),
        tensorrt_version="10.9.0",
        gpu_name="NVIDIA H100",
        compute_capability="9.0",
        precision="fp16",
        profile={"min": [1], "opt": [8], "max": [16]},
    )
    sidecar_path(plan).write_text(json.dumps({**meta.model_dump(), **over}))
    return plan


def test_plan_for_another_gpu_or_tensorrt_is_refused_with_rebuild_hint(tmp_path):
    plan = _plan(tmp_path)
    meta = read_plan_sidecar(plan)
    check_plan_matches(meta, plan, "10.9.0", "NVIDIA H100", "9.0")  # same machine: fine
    with pytest.raises(EngineError, match="rebuild it with `run_line.py build-engine`"):
        check_plan_matches(meta, plan, "11.0.0", "NVIDIA H100", "9.0")
    with pytest.raises(EngineError, match="NVIDIA L4"):
        check_plan_matches(meta, plan, "10.9.0", "NVIDIA L4", "8.9")


def test_corrupt_plan_sidecar_is_refused(tmp_path):
    plan = _plan(tmp_path, plan_sha256="0" * 64)
    with pytest.raises(EngineError, match="sha256 differs"):
        read_plan_sidecar(plan)
    sidecar_path(plan).write_text("{not json")
    with pytest.raises(EngineError, match="unreadable sidecar"):
        read_plan_sidecar(plan)


def test_tensorrt_engine_without_tensorrt_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError, as on this machine
    from engines.tensorrt_engine import TensorRTEngine

    with pytest.raises(EngineError, match="TensorRT is not installed"):
        TensorRTEngine(_plan(tmp_path))


@pytest.mark.gpu
def test_tensorrt_matches_onnxruntime(tiny_onnx, tmp_path):
    from engines.tensorrt_build import build_plan
    from engines.tensorrt_engine import TensorRTEngine

    plan = tmp_path / "tiny.plan"
    build_plan(tiny_onnx, plan, fp16=False, max_batch=4)
    trt_engine, ort_engine = TensorRTEngine(plan), OnnxRuntimeEngine(tiny_onnx)
    frames = parity_frames(64, 3, 4)
    s_t, m_t = trt_engine.infer(frames)
    s_o, m_o = ort_engine.infer(frames)
    assert np.abs(s_t - s_o).max() < 1e-3 and np.abs(m_t - m_o).max() < 1e-3


def test_uint8_tensors_feed_only_casts_in_the_graph(tiny_onnx):
    """TensorRT takes UINT8 only as a network input/output, then through a Cast: no other op may read one."""
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(tiny_onnx))).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    uint8 = {name for name, t in types.items() if t == onnx.TensorProto.UINT8}
    assert {"frames", "roi"} <= uint8
    readers = {(n.op_type, i) for n in graph.node for i in n.input if i in uint8}
    assert readers and all(op == "Cast" for op, _ in readers), sorted(readers)
