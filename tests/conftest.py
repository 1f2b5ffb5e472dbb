"""Shared fixtures: a tiny rendered vial dataset, a tiny model config, a checkpoint trained for 2 epochs,
and its exported ONNX graph. Real code paths throughout, kept small so the suite runs on 2 cores."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from model.config import GRDNetConfig, load_preset

warnings.filterwarnings("ignore", category=DeprecationWarning)


def run_cli(*args: str):
    """``python run_line.py ARGS`` as a user runs it; returns the CompletedProcess (text)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "run_line.py", *args], capture_output=True, text=True)


def assert_one_line_error(result, text: str) -> None:
    """Bad input: non-zero exit and one line on stderr that says what is wrong."""
    assert result.returncode != 0, result.stdout
    assert text in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


def make_verdict(camera: str, frame_id: int, **fields):
    """A pass verdict with placeholder times, score, threshold and model; keywords override any field."""
    from pipeline.verdicts import Verdict

    base = dict(slot=0, t_acq_ns=1, t_verdict_ns=2, score=0.1, threshold=0.5, reason="pass", model="m")
    return Verdict(camera=camera, frame_id=frame_id, **{**base, **fields})


def tiny_config() -> GRDNetConfig:
    cfg = load_preset("cpu")
    cfg.net.image_size = 64
    cfg.net.patch_size = 32  # native-resolution patches in training, whole 64 px frames in inference
    cfg.net.base_width = 8
    cfg.net.unet_widths = [8, 16]
    cfg.net.unet_middle = 16
    cfg.net.latent_dim = 64
    cfg.train.batch_size = 4
    cfg.train.epochs = 2
    cfg.train.min_holdout = 2
    cfg.train.validate_every = 1
    cfg.train.bn_batches = 2
    cfg.inference.smoothing_kernel = 5
    return cfg


def fixed_plan(epochs: int, after: int):
    """A stand-in for ``Budget.replan`` that plans ``epochs`` once ``after`` epochs ran, whatever the clock says:
    a tiny run's timings are too short and noisy to plan on."""

    def replan(self, done, *rest):
        if done >= after and self.planned is None:
            self.planned = epochs

    return replan


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from model.synth_dataset import write_product_dataset

    out = tmp_path_factory.mktemp("vials")
    write_product_dataset(out, n_train=12, n_test=8, seed=3, size=64)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory) -> Path:
    from model.train import train

    out = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    train(tiny_data, out, tiny_config(), seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory) -> Path:
    from engines.export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_checkpoint, out, max_batch=4, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free loopback port for the whole session."""
    from pipeline.redis_local import LocalRedis

    server = LocalRedis().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_redis():
    """A redis-server of its own, for tests that stop and restart it."""
    from pipeline.redis_local import LocalRedis

    server = LocalRedis().start()
    yield server
    server.stop()


@pytest.fixture
def durable_redis():
    """A redis-server of its own with an append-only file: what was written survives a stop and restart."""
    from pipeline.redis_local import LocalRedis

    server = LocalRedis(persist=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def engine_cache(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint's ONNX graph exported once into an engine cache the line's workers share."""
    from engines.select import ensure_onnx

    cache = tmp_path_factory.mktemp("engine-cache")
    ensure_onnx(tiny_checkpoint, cache, 4, log=lambda *_: None)
    return cache


@pytest.fixture
def browser():
    """Debian's chromium, headless (pipeline/browser.py): missing, the test fails and says what to install."""
    from pipeline.browser import headless_chromium

    b = headless_chromium()
    yield b
    b.quit()


def images_loaded(browser) -> list[str]:
    """The sources of images on the page that did not load (empty: every image shows)."""
    return browser.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80))"
    )


@pytest.fixture(scope="session")
def bundled_cache(tmp_path_factory) -> Path:
    """One engine cache for the command-line tests on the bundled model: the first exports it, the rest reuse it
    (as a user's ~/.cache/grdnet-line does); fresh per test session, never the user's."""
    return tmp_path_factory.mktemp("bundled-cache")


@pytest.fixture(scope="session")
def bundled_onnx(bundled_cache) -> Path:
    """The shipped model's graph, exported into the shared test cache (the command-line tests reuse it).

    Float32 parity between engines is asserted on this model: a 6-step tiny net is itself ill-conditioned
    (two float32 engines each sit ~7e-6 from its float64 result on random frames), the shipped one is not."""
    from engines.select import ensure_onnx
    from model.checkpoint import BUNDLED_CHECKPOINT

    return ensure_onnx(BUNDLED_CHECKPOINT, bundled_cache, max_batch=4, log=lambda *_: None)
