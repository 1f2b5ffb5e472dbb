import numpy as np
import pytest
import torch

from model import train as train_module
from model.checkpoint import load_checkpoint, read_meta
from model.config import load_preset
from model.grdnet import create_grdnet
from model.train import train
from model.train_speed import resolve_precision, to_memory_format
from model.train_step import make_optimisers, train_step
from tests.conftest import assert_one_line_error, run_cli, tiny_config


def test_tiny_training_lowers_the_generator_loss(tiny_data, tmp_path):
    # ten epochs of two steps: the fixture's two epochs (four steps) are too few to tell a fall from noise (its
    # loss rose on training seeds 1 and 2 before the loader change, and on seed 0 after it); over ten epochs it
    # fell by 4.6-12 (of ~57) on each of seeds 0-4
    cfg = tiny_config()
    cfg.train.epochs, cfg.train.validate_every = 10, 0
    t = train(tiny_data, tmp_path / "ten.safetensors", cfg, seed=0, progress=False).training
    assert t["epochs_run"] == 10
    assert t["final"]["gen"] < t["first"]["gen"], "generator loss must fall over ten epochs"


def test_tiny_training_writes_a_loadable_checkpoint(tiny_checkpoint):
    model, meta = load_checkpoint(tiny_checkpoint)
    t = meta.training
    assert t["epochs_run"] == 2
    assert np.isfinite(meta.threshold) and meta.calibration.n_good >= 2 and meta.calibration.source == "holdout"
    assert meta.threshold >= meta.calibration.good_quantile_score or meta.calibration.defect_escape_cap is not None
    assert meta.config.net.image_size == 64 and meta.id.startswith("grdnet-cpu-")
    assert t["precision"] == resolve_precision("auto") and t["channels_last"] == (t["precision"] == "bf16")
    tensors = model.state_dict().values()
    assert all(p.is_contiguous() for p in tensors)
    assert {p.dtype for p in tensors if p.is_floating_point()} == {torch.float32}
    with torch.no_grad():
        assert model.anomaly_map(torch.rand(1, 3, 64, 64)).shape == (1, 64, 64)


def test_checkpoint_weights_load_with_weights_only_semantics(tiny_checkpoint):
    # safetensors holds tensors and a JSON string only: nothing to unpickle
    from safetensors import safe_open

    with safe_open(str(tiny_checkpoint), framework="pt") as f:
        assert set(f.metadata()) == {"grdnet"}
        assert all(k.split(".")[0] in {"generator", "discriminator", "unet", "score_level"} for k in f.keys())


def test_train_writes_exactly_the_path_and_max_minutes_stops_at_an_epoch(tiny_data, tmp_path):
    cfg = tiny_config()
    cfg.train.epochs = 50
    cfg.train.validate_every = 0  # no holdout validation: the statistics pass runs after the last epoch
    out = tmp_path / "out" / "m.safetensors"
    meta = train(tiny_data, out, cfg, max_minutes=0.0001, seed=1, progress=False)
    assert meta.training["epochs_run"] == 1 and "max-minutes" in meta.training["stop"]
    assert meta.validation is None
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.safetensors"]
    assert read_meta(out).id == meta.id


def test_discriminator_is_reinitialised_when_its_loss_collapses():
    cfg = load_preset("cpu")
    cfg.net.image_size, cfg.net.base_width, cfg.net.unet_widths, cfg.net.unet_middle = 32, 4, [4], 8
    cfg.net.patch_size = None
    cfg.loss.disc_reinit_below = 10.0  # any loss counts as collapsed
    model = create_grdnet(cfg)
    opts = make_optimisers(model, cfg)
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    batch = (torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32))
    out = train_step(model, opts, batch, cfg)
    assert out["d_reinit"] == 1.0 and not opts.disc.state
    assert any(not torch.equal(a, b) for a, b in zip(before, model.discriminator.parameters(), strict=True))


def test_train_cli_bad_data_is_one_line_nonzero(tmp_path):
    r = run_cli("train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "m.safetensors"))
    assert_one_line_error(r, "dataset folder not found")


def test_checkpoint_with_an_unknown_config_key_is_a_one_line_error_naming_it(tiny_checkpoint, tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(tiny_checkpoint), framework="pt") as f:
        meta = json.loads(f.metadata()["grdnet"])
    meta["config"]["train"]["swa_start"] = 0.75  # a key this version does not know
    bad = tmp_path / "other-version.safetensors"
    save_file(load_file(str(tiny_checkpoint)), str(bad), metadata={"grdnet": json.dumps(meta)})
    r = run_cli("evaluate", "--data", str(tmp_path), "--checkpoint", str(bad))
    assert_one_line_error(r, f"{bad}: bad checkpoint metadata: config.train.swa_start")


def _one_batch_loader(cfg, seed: int, n: int = 4, batch_size: int = 4):
    """``n`` random 64 px frames in whole-frame batches of ``batch_size`` (by default four frames, one batch),
    synthesised inline: (images, dataset, loader)."""
    from model.dataset import TrainSet
    from model.train import make_loader

    cfg.net.patch_size, cfg.train.batch_size, cfg.train.loader_workers = None, batch_size, 0
    images = np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    ds = TrainSet(
        images=images, rois=np.ones((n, 64, 64), np.float32), patch=64,
        augment_cfg=cfg.augment, synth_cfg=cfg.synthesis, seed=0,
    )  # fmt: skip
    return images, ds, make_loader(ds, cfg, 0)


def test_recomputed_bn_statistics_make_eval_mode_match_the_trained_network():
    from model.keeping import recompute_bn_statistics

    cfg = tiny_config()
    cfg.synthesis.probability, cfg.augment.rotation_deg, cfg.augment.hflip = 0.0, 0.0, 0.0
    images, ds, loader = _one_batch_loader(cfg, 0)
    torch.manual_seed(0)
    model = create_grdnet(cfg)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # stale statistics, as a lagging 0.1-momentum trace leaves them; means too low and variances too small drive
    # every layer up, so the map moves whatever the initial weights (means too high alone left an untrained
    # 3-stage net at the U-Net prior, and whether the map moved depended on the seed)
    for m in norms:
        m.running_mean.sub_(3.0)
        m.running_var.mul_(0.01)
    with torch.no_grad():
        trained = model.train().anomaly_map(x)
        stale = model.eval().anomaly_map(x)
    recompute_bn_statistics(model, loader, batches=1, epoch_tag=5)
    assert loader.sampler.epoch == 0, "the loader's epoch is restored"
    with torch.no_grad():
        fixed = model.eval().anomaly_map(x)
    assert (stale - trained).abs().max() > 0.05, "stale statistics must change the map"
    assert (fixed - trained).abs().max() < 0.02
    assert all(m.momentum == 0.1 for m in norms)


def _small_step_setup(seed: int):
    cfg = load_preset("cpu")
    cfg.net.image_size, cfg.net.patch_size = 64, None
    torch.manual_seed(seed)
    model = create_grdnet(cfg)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 3, 64, 64, generator=g)
    mask = (torch.rand(4, 1, 64, 64, generator=g) > 0.9).float()
    batch = (x, (x + 0.3 * mask).clamp(0, 1), mask, torch.ones(4, 1, 64, 64))
    return cfg, model, make_optimisers(model, cfg), batch


def test_a_bf16_step_runs_its_convolutions_in_bf16_and_keeps_weights_and_losses_float32():
    cfg, model, opts, batch = _small_step_setup(3)
    seen: set[torch.dtype] = set()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    model.to(memory_format=torch.channels_last)
    out = train_step(model, opts, to_memory_format(batch, True), cfg, "bf16")
    assert seen == {torch.bfloat16}
    assert all(np.isfinite(v) for v in out.values())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for o in (opts.gen, opts.seg) for s in o.state.values())


def test_a_bf16_step_gives_the_float32_step_losses_to_within_bf16_rounding():
    cfg, model32, opts32, batch = _small_step_setup(4)
    _, model16, opts16, _ = _small_step_setup(4)
    a = train_step(model32, opts32, batch, cfg, "fp32")
    b = train_step(model16, opts16, batch, cfg, "bf16")
    for k in ("d", "adv", "con", "enc", "seg"):
        assert abs(a[k] - b[k]) <= 0.03 * abs(a[k]) + 1e-3, (k, a[k], b[k])


def test_precision_auto_follows_the_cpu_and_unknown_values_are_refused(monkeypatch):
    from model import train_speed

    monkeypatch.setattr(train_speed, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(train_speed, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto") == "bf16" and resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="train.precision"):
        resolve_precision("fp16")


def test_the_weight_average_follows_every_step_and_is_what_a_run_keeps(tiny_data, tmp_path):
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from model.train import run_epoch

    cfg = tiny_config()
    _, _, loader = _one_batch_loader(cfg, 1)
    model = create_grdnet(cfg)
    opts, decay = make_optimisers(model, cfg), 0.75
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
    raw = []
    for _ in range(2):  # one batch an epoch: one step, one update of the average
        run_epoch(model, opts, loader, cfg, "t", False, average=average)
        raw.append(_weights(model))
    for name, value in average.module.named_parameters():  # first update copies, then ema = d * ema + (1 - d) * w
        assert torch.allclose(value, decay * raw[0][name] + (1 - decay) * raw[1][name], atol=1e-6), name
    cfg = tiny_config()
    cfg.train.ema_decay = 0.9
    meta = train(tiny_data, tmp_path / "ema.safetensors", cfg, seed=0, progress=False)
    assert meta.training["ema_decay"] == 0.9 and meta.validation["kept"]["epoch"] >= 1


def _step_setup():
    """The tiny config, its model and optimisers, and one random batch of two training patches with sparse marks."""
    cfg = tiny_config()
    model = create_grdnet(cfg)
    n = cfg.net.train_size()
    x = torch.rand(2, 3, n, n)
    batch = (x, x.clone(), (torch.rand(2, 1, n, n) > 0.9).float(), torch.ones(2, 1, n, n))
    return cfg, model, make_optimisers(model, cfg), batch


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _moved_nets(model, before: dict) -> set[str]:
    """The sub-networks (generator, discriminator, unet) with any parameter changed since ``before``."""
    return {k.split(".")[0] for k, v in model.named_parameters() if not torch.equal(v, before[k])}


def test_extra_unet_updates_move_only_the_unet_and_the_epoch_alternates_them(monkeypatch):
    from model import train_step as step_module
    from model.train import run_epoch

    cfg, model, opts, batch = _step_setup()
    before = _weights(model)
    out = step_module.segment_step(model, opts, batch, cfg)
    assert set(out) == {"seg"} and np.isfinite(out["seg"])
    assert _moved_nets(model, before) == {"unet"}

    calls: list[str] = []
    monkeypatch.setattr(train_module, "train_step", lambda *a, **k: calls.append("full") or {"gen": 2.0, "seg": 1.0})
    monkeypatch.setattr(train_module, "segment_step", lambda *a: calls.append("seg") or {"seg": 3.0})
    cfg.train.seg_updates = 3
    _, _, loader = _one_batch_loader(cfg, 0, n=7, batch_size=1)
    means = run_epoch(model, opts, loader, cfg, "t", False)
    assert calls == ["full", "seg", "seg", "full", "seg", "seg", "full"]
    assert means["gen"] == 2.0 and means["seg"] == pytest.approx((3 * 1.0 + 4 * 3.0) / 7)


def test_discriminator_updated_every_nth_full_step_only_and_the_generator_still_learns(monkeypatch):
    from model import train_step as step_module
    from model.train import run_epoch

    cfg, model, opts, batch = _step_setup()
    before = _weights(model)
    out = step_module.train_step(model, opts, batch, cfg, update_disc=False)
    assert "d" not in out and np.isfinite(out["gen"]) and np.isfinite(out["adv"])
    assert _moved_nets(model, before) == {"generator", "unet"}
    out = step_module.train_step(model, opts, batch, cfg)
    assert "d" in out and "discriminator" in _moved_nets(model, before)

    calls: list[str] = []

    def fake_full(*a, update_disc: bool = True, **k) -> dict:
        calls.append("full+d" if update_disc else "full")
        return {"gen": 2.0, "seg": 1.0, **({"d": 0.5} if update_disc else {})}

    monkeypatch.setattr(train_module, "train_step", fake_full)
    monkeypatch.setattr(train_module, "segment_step", lambda *a, **k: calls.append("seg") or {"seg": 1.0})
    cfg.train.disc_every, cfg.train.seg_updates = 3, 2
    _, _, loader = _one_batch_loader(cfg, 0, n=13, batch_size=1)
    means = run_epoch(model, opts, loader, cfg, "t", False)
    fulls = [c for c in calls if c != "seg"]
    assert calls[1::2] == ["seg"] * 6 and fulls == ["full+d", "full", "full", "full+d", "full", "full", "full+d"]
    assert means["d"] == 0.5 and means["gen"] == 2.0


def test_loader_workers_persist_across_epochs_and_synthesise_the_epoch_asked_for():
    from model.dataset import set_epoch
    from model.train import make_loader

    cfg = tiny_config()
    _, ds, inline = _one_batch_loader(cfg, 2, n=8, batch_size=4)
    cfg.train.loader_workers = 1
    forked = make_loader(ds, cfg, 0)
    batches, pids = {}, []
    for epoch in (3, 5, 3):
        set_epoch(forked, epoch)
        batches.setdefault(epoch, []).append([b[1] for b in forked])  # the noisy inputs, synthesised per epoch
        pids.append(tuple(w.pid for w in forked._iterator._workers))
        set_epoch(inline, epoch)
        assert all(torch.equal(a, b[1]) for a, b in zip(batches[epoch][-1], inline, strict=True)), "same as inline"
    assert pids[0] == pids[1] == pids[2], "one worker process for every epoch, not a fork each epoch"
    assert all(torch.equal(a, b) for a, b in zip(*batches[3], strict=True)), "an epoch's batches repeat exactly"
    assert not torch.equal(batches[3][0][0], batches[5][0][0]), "another epoch draws other batches"
