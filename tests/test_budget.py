"""The learning rate over a run and the epoch budget of a time-limited one (model/budget.py): the plan, its
revisions, the schedule a real run follows and where its validations fall."""

import torch

from model import train as train_module
from model.budget import Budget, cosine_factor, typical_seconds
from model.config import load_preset
from model.grdnet import create_grdnet
from model.train import train
from model.train_step import make_optimisers
from tests.conftest import fixed_plan, tiny_config


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
