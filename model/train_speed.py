"""How a training step uses the CPU: bfloat16 autocast where the cores multiply it natively (AVX-512 BF16, with
or without AMX tiles), and channels-last tensors, which oneDNN's convolutions prefer.

Measured on 2 cores, one `cpu`-preset step (batch 8, 128 px patches; docs/results.md, "Training speed"): on a
Xeon with AMX 0.83 s float32, 0.66 s channels-last, 0.41 s both; on an AMD EPYC with AVX-512 BF16 and no AMX
1.18 s float32, 0.77 s bf16, 0.55 s both. Only the step's forward
passes run in bfloat16, and self-validation scores its frames in bfloat16 too (0.045 s instead of 0.100 s a 256 px
frame on the EPYC; it picks the epoch, the kernel and the widening, nothing the checkpoint stores as a number):
weights, Adam state, the losses, BatchNorm recomputation, the normal level, calibration and the checkpoint stay
float32, so the graph and the engines see the same float32 model as before.

Channels-last is used with bf16 only: in float32 its convolution backward corrupted memory ("double free or
corruption") at base widths 4-8 on 64 px inputs (torch 2.13); bf16 channels-last ran clean at widths 4-32 and
48-128 px."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch

from model.errors import InputError

Precision = Literal["fp32", "bf16"]


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 (AMX tiles are faster still, but not needed: the AMD EPYC above steps 2.2x faster in bf16
    without them); without it bfloat16 convolutions are emulated and slower than float32."""
    return bool(torch.cpu._is_avx512_bf16_supported())


def resolve_precision(setting: str) -> Precision:
    """``auto``: bf16 on cores with native bfloat16, else fp32; ``fp32``/``bf16`` as asked."""
    if setting == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if setting not in ("fp32", "bf16"):
        raise InputError(f"train.precision: expected auto, fp32 or bf16, got {setting!r}")
    return setting  # type: ignore[return-value]


def use_channels_last(setting: bool, precision: Precision) -> bool:
    """``train.channels_last`` takes effect with bf16 only (the float32 crash in the module docstring)."""
    return setting and precision == "bf16"


@contextlib.contextmanager
def step_autocast(precision: Precision) -> Iterator[None]:
    """Forward passes in ``precision``: a training step's, and self-validation's scoring; a no-op in fp32."""
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


def fp32(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The losses take float32: bfloat16's 8-bit mantissa would round focal-loss logs and SSIM means."""
    return tuple(t.float() for t in tensors)


def to_memory_format(batch: tuple[torch.Tensor, ...], channels_last: bool) -> tuple[torch.Tensor, ...]:
    """Images and masks in the layout the model's weights are in (4-D tensors only)."""
    if not channels_last:
        return batch
    return tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch)
