"""Seconds per training step of a preset in each precision and layout on this CPU: the figure that decides how
many epochs a time-limited run plans (docs/results.md, "Training speed").

    python3 -m model.step_speed [--preset cpu] [--steps 6]

Random batches, 3 warm-up steps, then ``--steps`` timed; nothing else should run beside it."""

from __future__ import annotations

import argparse
import time

import torch

from model.config import load_preset
from model.grdnet import GRDNet
from model.train_speed import Precision, cpu_has_native_bf16, to_memory_format
from model.train_step import make_optimisers, train_step

VARIANTS: list[tuple[Precision, bool]] = [("fp32", False), ("bf16", False), ("bf16", True)]


def seconds_per_step(preset: str, precision: Precision, channels_last: bool, steps: int) -> float:
    """Mean seconds of ``steps`` full training steps (all three networks) after 3 warm-up steps."""
    torch.manual_seed(0)
    cfg = load_preset(preset)
    model = GRDNet(cfg)
    opts = make_optimisers(model, cfg)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    b, p = cfg.train.batch_size, cfg.net.patch_size
    x = torch.rand(b, cfg.net.channels, p, p)
    batch = (x, x.clone(), (torch.rand(b, 1, p, p) > 0.9).float(), torch.ones(b, 1, p, p))
    batch = to_memory_format(batch, channels_last)
    for _ in range(3):
        train_step(model, opts, batch, cfg, precision)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, opts, batch, cfg, precision)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    print(f"native bf16 (AVX-512 BF16): {cpu_has_native_bf16()}; {torch.get_num_threads()} threads")
    for precision, channels_last in VARIANTS:
        s = seconds_per_step(args.preset, precision, channels_last, args.steps)
        print(f"{precision}{' channels-last' if channels_last else ''}: {s:.3f} s/step", flush=True)


if __name__ == "__main__":
    main()
