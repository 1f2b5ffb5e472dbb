import numpy as np
import pytest
import torch

from model import train as train_module
from model.budget import Budget, cosine_factor, typical_seconds
from model.checkpoint import load_checkpoint, read_meta
from model.config import load_preset
from model.grdnet import create_grdnet
from model.train import train
from model.train_speed import resolve_precision, to_memory_format
from model.train_step import make_optimisers, train_step
from tests.conftest import assert_one_line_error, fixed_plan, run_cli, tiny_config


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


def test_cosine_schedule_ends_at_its_floor_and_paper_keeps_plateau():
    cfg = tiny_config()
    cfg.train.lr_schedule, cfg.train.epochs, cfg.train.lr, cfg.train.cosine_floor = "cosine", 5, 1e-3, 0.1
    opts = make_optimisers(create_grdnet(cfg), cfg)
    seen = []
    for _ in range(cfg.train.epochs):
        seen.append(opts.seg.param_groups[0]["lr"])
        for o in (opts.gen, opts.disc, opts.seg):
            o.step()
        for s in opts.schedulers:
            s.step()
    assert seen[0] == 1e-3 and abs(seen[-1] - 1e-4) < 1e-9
    assert all(a > b for a, b in zip(seen, seen[1:], strict=False)), "the lr must fall every epoch"
    paper = load_preset("paper")
    assert paper.train.lr_schedule == "plateau"
    assert isinstance(
        make_optimisers(create_grdnet(tiny_config()), paper).schedulers[0], torch.optim.lr_scheduler.ReduceLROnPlateau
    )


def test_budget_fraction_follows_the_planned_epochs_never_the_clock():
    b = Budget(epochs=4, steps_per_epoch=10)
    assert b.fraction(0, 0) == 0 and b.fraction(2, 0) == 0.5 and b.fraction(3, 10) == 1.0
    b.planned = 2
    assert b.fraction(1, 5) == 0.75 and b.fraction(2, 0) == 1.0
    assert cosine_factor(0.0, 0.05) == 1.0 and abs(cosine_factor(1.0, 0.05) - 0.05) < 1e-12
    assert abs(cosine_factor(0.5, 0.0) - 0.5) < 1e-12


def test_plan_fits_the_time_limit_with_spare_and_is_lowered_only_when_the_machine_slows():
    b = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    none = lambda done, n: 0  # noqa: E731
    b.replan(3, 40.0, 10.0, 0.0, 0.0, none)
    assert b.planned is None, "planned on epochs 2-4: the first pays start-up costs, one more could be slow"
    b.replan(4, 50.0, 10.0, 0.0, 0.0, none)
    assert b.planned == 56 and b.lowered == 0  # 50 + 52 x 10.5 <= 600 < 50 + 53 x 10.5
    b.replan(10, 110.0, 10.4, 0.0, 0.0, none)
    assert b.planned == 56 and b.lowered == 0, "slower within the spare: the plan stands"
    b.replan(20, 250.0, 12.0, 0.0, 0.0, none)
    assert b.planned == 49 and b.lowered == 1  # 250 + 29 x 12 <= 600
    every = lambda done, n: n - done  # noqa: E731
    v = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    v.replan(4, 50.0, 10.0, 5.0, 20.0, every)
    assert v.planned == 37  # 50 + 33 x (10.5 + 5.25) + 20 <= 600
    capped = Budget(epochs=8, steps_per_epoch=10, max_seconds=600.0)
    capped.replan(4, 50.0, 10.0, 0.0, 0.0, none)
    assert capped.planned == 8, "never past train.epochs"
    late = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    late.replan(4, 590.0, 10.0, 0.0, 0.0, none)
    assert late.planned == 4 and late.total() == 4, "nothing more fits: the epoch just run is the last"


def test_the_first_timed_validation_revises_the_plan_once_up_or_down():
    every_other = lambda done, n: sum(k % 2 == 0 or k == n for k in range(done + 1, n + 1))  # noqa: E731
    b = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    b.replan(4, 50.0, 10.0, 10.0, 15.0, every_other)  # no validation timed yet: assumed to cost an epoch
    assert b.planned == 37 and b.revised is None  # 50 + (33 + 17) x 10.5 + 15 <= 600
    b.replan(14, 160.0, 10.0, 6.0, 9.0, every_other, val_timed=True)  # validations cost 6 s, not 10
    assert b.revised == 37 and b.planned == 45 and b.lowered == 0  # 160 + 31 x 10.5 + 16 x 6.3 + 9 <= 600
    b.replan(16, 182.0, 10.0, 4.0, 6.0, every_other, val_timed=True)
    assert b.planned == 45 and b.revised == 37, "raised once only: a plan that follows every epoch is the clock"
    b.replan(20, 260.0, 12.0, 7.0, 10.5, every_other, val_timed=True)
    assert b.planned == 41 and b.lowered == 1, "lowering still follows a machine that slowed"
    dear = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    dear.replan(4, 50.0, 10.0, 10.0, 15.0, every_other)
    dear.replan(14, 160.0, 10.0, 20.0, 30.0, every_other, val_timed=True)
    assert dear.planned < 37 and dear.revised == 37 and dear.lowered == 0, "dearer validations revise it down"
    same = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    same.replan(4, 50.0, 10.0, 10.0, 15.0, every_other)
    same.replan(14, 208.0, 10.0, 10.0, 15.0, every_other, val_timed=True)  # as assumed: the plan stands
    assert same.planned == 37 and same.revised is None, "a revision that changed nothing is not reported as one"
    early = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)  # a config that validates before epoch 4
    early.replan(4, 50.0, 10.0, 6.0, 9.0, every_other, val_timed=True)
    first = early.planned
    early.replan(5, 58.0, 8.0, 5.0, 7.5, every_other, val_timed=True)
    assert early.planned == first and early.revised is None, "a first plan made on a timed validation is not revised"


def test_one_slow_epoch_costs_its_own_time_not_the_plan():
    assert typical_seconds([3.0, 1.0, 2.0]) == 2.0 and typical_seconds([1.0, 4.0]) == 2.5
    none = lambda done, n: 0  # noqa: E731
    b = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    assert not b.after_epoch(4, 68.0, [20.0, 18.0, 10.0, 10.0], [], 0.0, none)  # epoch 2 slowed by 8 s
    assert b.planned == 54, "planned on the median of epochs 2-4, not on the slow second"  # 68 + 50 x 10.5
    steady = [18.0, 10.0, 10.0, 40.0, 10.0]  # epochs 2-6; epoch 5 slowed by another process for 30 s
    elapsed = 20.0 + sum(steady)  # 108 s after epoch 6
    b.replan(6, elapsed, typical_seconds(steady), 0.0, 0.0, none)
    assert b.planned == 54 and b.lowered == 0, "108 + 48 x 10 still fits: the lost 30 s came out of the spare"
    assert not b.fits(54, 6, elapsed, max(steady), 0.0, 0.0, none), "the slowest epoch as the rate would lower it"
    slower = [10.0, 10.0, 13.0, 13.0, 13.0]  # a lasting slowdown moves the median: the plan is lowered
    b.replan(6, 20.0 + sum(slower), typical_seconds(slower), 0.0, 0.0, none)
    assert b.planned == 46 and b.lowered == 1  # 79 + 40 x 13 <= 600 < 79 + 41 x 13


def test_after_epoch_plans_on_the_median_and_stops_when_the_slowest_next_epoch_would_not_fit():
    none = lambda done, n: 0  # noqa: E731
    b = Budget(epochs=60, steps_per_epoch=10, max_seconds=600.0)
    assert not b.after_epoch(1, 20.0, [20.0], [], 0.0, none) and b.planned is None
    assert not b.after_epoch(4, 50.0, [20.0, 10.0, 10.0, 10.0], [], 0.0, none)
    assert b.planned == 56, "the first epoch's start-up costs are left out once steady ones are measured"
    times = [20.0, 10.0, 10.0, 40.0, 10.0, 10.0]  # epoch 4 slowed by another process for 30 s
    assert not b.after_epoch(6, 100.0, times, [], 0.0, none)
    assert b.planned == 56 and b.lowered == 0, "one slow epoch costs its own time, not the plan"
    # 555 s in: the slowest epoch seen (40 s) and a validation as long (none measured yet) would end past 600 s
    assert b.after_epoch(40, 555.0, times, [], 0.0, none)
    assert not b.after_epoch(40, 555.0, [20.0, *[10.0] * 39], [], 0.0, none)
    validated = [20.0, *[10.0] * 39]  # with validations of 5 s, the slowest counts for the next and 1.5 after
    assert b.after_epoch(40, 570.0, validated, [5.0, 12.0], 1.5, none)  # 570 + 10 + 2.5 x 12 > 600
    assert b.revised == 44 and b.planned == 41, "the first timed validations revised the plan (570 + 1 x 10.5)"
    assert not Budget(epochs=60, steps_per_epoch=10).after_epoch(40, 1e9, validated, [], 0.0, none), "no limit"


def test_a_time_limited_run_stops_at_its_plan_with_the_lr_annealed(tiny_data, tmp_path, monkeypatch):
    seen = []
    real_set_lr = train_module.set_lr
    monkeypatch.setattr(train_module, "set_lr", lambda opts, lr: (seen.append(lr), real_set_lr(opts, lr)))

    monkeypatch.setattr(Budget, "replan", fixed_plan(3, after=2))
    cfg = tiny_config()
    cfg.train.lr_schedule, cfg.train.epochs, cfg.train.lr, cfg.train.cosine_floor = "budget", 8, 1e-3, 0.05
    meta = train(tiny_data, tmp_path / "m.safetensors", cfg, max_minutes=60, seed=0, progress=False)
    t = meta.training
    assert t["epochs_run"] == 3 and t["planned_epochs"] == 3 and "3 epochs planned" in t["stop"]
    assert seen[-1] < 0.15e-3, "annealed over the plan, not over train.epochs"
    assert meta.validation["curve"][-1]["epoch"] == 3, "the planned last epoch is validated"


def test_budget_schedule_anneals_every_step_of_a_real_run(tiny_data, tmp_path, monkeypatch):
    seen = []
    real_set_lr = train_module.set_lr
    monkeypatch.setattr(train_module, "set_lr", lambda opts, lr: (seen.append(lr), real_set_lr(opts, lr)))
    cfg = tiny_config()
    cfg.train.lr_schedule, cfg.train.epochs, cfg.train.lr, cfg.train.cosine_floor = "budget", 3, 1e-3, 0.05
    meta = train(tiny_data, tmp_path / "m.safetensors", cfg, seed=0, progress=False)
    assert meta.training["epochs_run"] == 3 and len(seen) >= 6, "set every step, not once an epoch"
    assert seen[0] == 1e-3 and all(a > b for a, b in zip(seen, seen[1:], strict=False))
    assert seen[-1] < 0.15e-3, "the last steps run near the floor"


def test_validation_waits_for_its_share_of_the_budget_and_the_last_epoch_is_always_validated(tiny_data, tmp_path):
    cfg = tiny_config()
    cfg.train.epochs, cfg.train.validate_every, cfg.train.validate_from = 5, 2, 0.3
    meta = train(tiny_data, tmp_path / "a.safetensors", cfg, seed=0, progress=False)
    assert [c["epoch"] for c in meta.validation["curve"]] == [2, 4, 5]
    assert meta.training["validations"] == 3 and meta.training["validation_seconds"] > 0
    cfg.train.epochs, cfg.train.validate_every = 50, 4
    meta = train(tiny_data, tmp_path / "b.safetensors", cfg, max_minutes=0.0001, seed=0, progress=False)
    assert "max-minutes" in meta.training["stop"] and meta.training["epochs_run"] == 1
    assert [c["epoch"] for c in meta.validation["curve"]] == [1], "a run stopped by its budget keeps a validated epoch"


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
