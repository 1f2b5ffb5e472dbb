"""The INT8 option for CPU hosts: a QDQ copy of the graph with the same contract, gated on accuracy, opened by
``--engine onnxruntime-int8|openvino-int8`` and weighed by ``auto`` only once it passed its gate."""

import shutil
from typing import get_args

import numpy as np
import onnx
import pytest

from engines import int8
from engines.base import EngineError
from engines.export import parity_frames
from engines.ort_engine import OnnxRuntimeEngine
from engines.select import KINDS, open_engine
from engines.sidecar import read_onnx_sidecar, sidecar_path
from model.checkpoint import read_meta
from pipeline.config import WorkerConfig


@pytest.fixture
def cache(engine_cache, tmp_path):
    """A copy of the tiny model's engine cache (the FP32 graph exported), so each test quantizes afresh."""
    return shutil.copytree(engine_cache, tmp_path / "cache")


def test_int8_graph_quantizes_the_convolutions_and_keeps_the_contract(tiny_onnx, tmp_path):
    meta = read_onnx_sidecar(tiny_onnx)
    s, c = meta.image_size, meta.channels
    good = parity_frames(s, c, 8, seed=1)
    out = int8.quantize_graph(tiny_onnx, tmp_path / "m.int8.onnx", good, np.full((s, s), 255, np.uint8), print)
    graph = onnx.load(str(out)).graph
    ops = [n.op_type for n in graph.node]
    fp32_ops = [n.op_type for n in onnx.load(str(tiny_onnx)).graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > fp32_ops.count("Conv")
    io = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}
    assert io == {
        "frames": onnx.TensorProto.UINT8,
        "roi": onnx.TensorProto.UINT8,
        "scores": onnx.TensorProto.FLOAT,
        "maps": onnx.TensorProto.FLOAT,
    }
    # the sigmoid, ROI and smoothing stay float: their ops are not wrapped in Q/DQ
    assert ops.count("Sigmoid") == fp32_ops.count("Sigmoid")


def test_gate_refuses_an_int8_graph_that_loses_accuracy_and_writes_nothing(
    tiny_checkpoint, tiny_data, cache, monkeypatch
):
    monkeypatch.setattr(int8, "MAX_AUROC_DROP", -1.0)  # a gate nothing can pass: the refusal path
    with pytest.raises(EngineError, match="INT8 graph not written: image AUROC drops"):
        int8.quantize_checkpoint(tiny_checkpoint, tiny_data, tiny_data, cache, 8, log=lambda *_: None)
    folder = cache / read_meta(tiny_checkpoint).id
    assert not [p for p in folder.iterdir() if "int8" in p.name], "no INT8 file left behind"
    with pytest.raises(EngineError, match="run `run_line.py quantize`"):
        open_engine("onnxruntime-int8", tiny_checkpoint, cache, max_batch=4, log=lambda *_: None)


def test_a_kept_int8_graph_records_its_gate_and_serves_both_cpu_runtimes(
    tiny_checkpoint, tiny_data, cache, monkeypatch
):
    # the keeping path: the tiny set's 8 test images move AUROC in steps of 0.06, too coarse to hold the real
    # 0.005 gate either way; the gate itself is measured on the bundled model (docs/results.md)
    monkeypatch.setattr(int8, "MAX_AUROC_DROP", 1.0)
    meta = int8.quantize_checkpoint(tiny_checkpoint, tiny_data, tiny_data, cache, 8, log=lambda *_: None)
    acc = meta.accuracy
    assert meta.precision == "int8" and acc["n_test"] > 0 and acc["n_calibration"] == 8
    assert acc["auroc_drop"] == pytest.approx(acc["image_auroc_fp32"] - acc["image_auroc_int8"], abs=1e-5)
    path = cache / meta.checkpoint_id / "model.int8.onnx"
    assert (
        read_onnx_sidecar(path).accuracy == acc and not sidecar_path(path.with_name(path.name + ".candidate")).exists()
    )
    fp32 = OnnxRuntimeEngine(cache / meta.checkpoint_id / "model.onnx")
    frames = parity_frames(fp32.image_size, fp32.channels, 3, seed=2)
    ref, _ = fp32.infer(frames)
    for kind in ("onnxruntime-int8", "openvino-int8"):
        engine = open_engine(kind, tiny_checkpoint, cache, max_batch=4, log=lambda *_: None)
        assert engine.name == kind, "reports name the INT8 engines as such"
        scores, maps = engine.infer(frames)
        assert maps.shape == (3, fp32.image_size, fp32.image_size) and scores.dtype == np.float32
        assert np.abs(scores - ref).max() < 0.1, f"{kind}: an INT8 copy of the same model, not another model"


def test_every_engine_kind_is_a_line_config_choice():
    assert set(get_args(WorkerConfig.model_fields["engine"].annotation)) == set(KINDS)
