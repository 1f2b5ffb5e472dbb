"""OpenVINO beside ONNX Runtime on CPU: parity on the same graph, and ``auto``'s measured, recorded choice."""

import json

import numpy as np
import pytest

from engines.cpu_choice import RECORD, choose_cpu_engine, host_key
from engines.export import parity_frames
from engines.openvino_engine import OpenVinoEngine
from engines.ort_engine import OnnxRuntimeEngine

TOLERANCE = 1e-5  # the same float32 graph: measured deltas ~1e-7, as between ONNX Runtime and PyTorch


@pytest.fixture(scope="module")
def cpu_engines(tiny_onnx):
    return OnnxRuntimeEngine(tiny_onnx, threads=1), OpenVinoEngine(tiny_onnx, threads=1)


@pytest.mark.parametrize("batch", [1, 3])
def test_openvino_matches_onnxruntime_with_a_static_mask(cpu_engines, batch):
    ort_engine, ov_engine = cpu_engines
    frames = parity_frames(64, 3, batch, seed=batch)
    roi = np.full((batch, 64, 64), 255, np.uint8)
    roi[:, :, :20] = 0
    s_o, m_o = ort_engine.infer(frames, roi)
    s_v, m_v = ov_engine.infer(frames, roi)
    assert s_v.shape == (batch,) and m_v.shape == (batch, 64, 64) and s_v.dtype == np.float32
    assert np.abs(s_o - s_v).max() < TOLERANCE and np.abs(m_o - m_v).max() < TOLERANCE
    assert (m_v[:, :, :20] == 0).all()
    scores, maps = ov_engine.infer(frames, roi, want_maps=False)
    assert maps is None and np.allclose(scores, s_v)


def test_auto_times_the_cpu_engines_once_and_reuses_the_recorded_choice(cpu_engines, tiny_onnx, tmp_path):
    ort_engine, ov_engine = cpu_engines
    graph = tmp_path / "model.onnx"
    graph.write_bytes(tiny_onnx.read_bytes())
    lines = []
    chosen = choose_cpu_engine({"onnxruntime": ort_engine, "openvino": ov_engine}, graph, 1, 2, lines.append)
    record = json.loads((tmp_path / RECORD).read_text())[host_key(1, 2)]
    figures = record["frames_per_s"]
    assert record["chosen"] == chosen == max(figures, key=figures.get) and all(f > 0 for f in figures.values())
    assert "openvino" in lines[0] and "onnxruntime" in lines[0]
    record = json.loads((tmp_path / RECORD).read_text())
    record[host_key(1, 2)]["chosen"] = "onnxruntime" if chosen == "openvino" else "openvino"
    (tmp_path / RECORD).write_text(json.dumps(record))
    again = choose_cpu_engine({"onnxruntime": ort_engine, "openvino": ov_engine}, graph, 1, 2, lines.append)
    assert again != chosen and len(lines) == 1, "a recorded choice is reused without timing again"


def test_a_cpu_engine_that_disagrees_with_onnxruntime_is_never_chosen(cpu_engines, tiny_onnx, tmp_path):
    ort_engine, ov_engine = cpu_engines

    class Off(OpenVinoEngine):
        def __init__(self):  # the real compiled graph, its scores shifted by more than the parity limit
            self.__dict__.update(ov_engine.__dict__)

        def _run(self, frames, roi, want_maps):
            s, m = super()._run(frames, roi, want_maps)
            return s + 0.01, m

    graph = tmp_path / "model.onnx"
    graph.write_bytes(tiny_onnx.read_bytes())
    lines = []
    assert choose_cpu_engine({"onnxruntime": ort_engine, "openvino": Off()}, graph, 1, 2, lines.append) == "onnxruntime"
    assert any("differs from ONNX Runtime" in line for line in lines)
