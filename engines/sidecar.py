"""JSON sidecars beside compiled graphs: what they were built from and for, checked before use.

``model.onnx.json`` names the checkpoint, input size, threshold, opset and the graph's sha256;
``model.plan.json`` adds the TensorRT version, GPU and compute capability and the optimisation profile.
A plan whose sidecar does not match this machine is refused with one line that says to rebuild.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

from engines.base import EngineError


class OnnxMeta(BaseModel):
    checkpoint_id: str
    image_size: int
    channels: int
    threshold: float
    opset: int
    precision: str = "fp32"
    sha256: str
    max_batch: int
    inputs: dict[str, str]
    outputs: dict[str, str]
    parity: dict[str, float] = {}
    torch_version: str = ""
    accuracy: dict[str, float | int | str] = {}  # an INT8 graph's gate figures (engines/int8.py)


class PlanMeta(BaseModel):
    checkpoint_id: str
    image_size: int
    channels: int
    threshold: float
    onnx_sha256: str
    plan_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: dict[str, list[int]]  # min/opt/max frames shape
    parity: dict[str, float | bool] = {}  # against ONNX Runtime on CPU, for plans ``auto`` built (same gate as export)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """A reader (another line starting, a second build) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def sidecar_path(path: Path) -> Path:
    return Path(str(path) + ".json")


def _read(path: Path, model: type[BaseModel], kind: str) -> BaseModel:
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: {kind} not found")
    side = sidecar_path(path)
    if not side.is_file():
        raise EngineError(f"{side}: sidecar missing; re-create {path.name} with run_line.py")
    try:
        meta = model.model_validate_json(side.read_text())
    except (ValidationError, ValueError) as exc:
        raise EngineError(f"{side}: unreadable sidecar: {str(exc).splitlines()[0]}") from exc
    return meta


def read_onnx_sidecar(path: Path) -> OnnxMeta:
    meta = _read(path, OnnxMeta, "ONNX graph")
    if sha256_file(path) != meta.sha256:
        raise EngineError(f"{path}: sha256 differs from its sidecar (corrupt or replaced); export it again")
    return meta  # type: ignore[return-value]


def read_plan_sidecar(path: Path) -> PlanMeta:
    meta = _read(path, PlanMeta, "TensorRT plan")
    if sha256_file(path) != meta.plan_sha256:
        raise EngineError(f"{path}: sha256 differs from its sidecar (corrupt or replaced); rebuild with build-engine")
    return meta  # type: ignore[return-value]


def plan_stale_reason(
    plan: Path, onnx: OnnxMeta, max_batch: int, trt_version: str, gpu_name: str, capability: str
) -> str | None:
    """Why the cached ``plan`` cannot serve this graph on this machine (None: it can). A plan is made from one
    graph for one TensorRT and GPU with one profile; any of them changing means building it again."""
    try:
        meta = read_plan_sidecar(plan)
    except EngineError as exc:
        return str(exc)
    if meta.onnx_sha256 != onnx.sha256:
        return f"{plan}: built from another graph (sha256 {meta.onnx_sha256[:12]}, the graph is {onnx.sha256[:12]})"
    if meta.profile["max"][0] < max_batch:
        return f"{plan}: profile holds {meta.profile['max'][0]} frames a batch, {max_batch} wanted"
    try:
        check_plan_matches(meta, plan, trt_version, gpu_name, capability)
    except EngineError as exc:
        return str(exc)
    return None


def check_plan_matches(meta: PlanMeta, plan: Path, trt_version: str, gpu_name: str, capability: str) -> None:
    """A TensorRT plan only runs on the TensorRT version and GPU it was built for."""
    built = (meta.tensorrt_version, meta.gpu_name, meta.compute_capability)
    here = (trt_version, gpu_name, capability)
    if built != here:
        raise EngineError(
            f"{plan}: built for TensorRT {built[0]} on {built[1]} (sm {built[2]}), this machine has TensorRT "
            f"{here[0]} on {here[1]} (sm {here[2]}); rebuild it with `run_line.py build-engine`"
        )
