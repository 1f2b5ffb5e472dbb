"""``train --candidates N``: N seeds trained, the run self-validation ranks first written at exactly --out."""

import yaml

import run_line
from model.candidates import candidate_rank
from model.checkpoint import CheckpointMeta, read_meta
from tests.conftest import tiny_config


def _meta(image_auroc: float, pixel_auroc: float, collapsed: bool) -> CheckpointMeta:
    kept = {"image_auroc": image_auroc, "pixel_auroc": pixel_auroc, "collapsed": collapsed}
    return CheckpointMeta(config=tiny_config(), threshold=0.5, image_size=64, channels=3, validation={"kept": kept})


def test_a_sound_run_outranks_a_collapsed_one_and_then_image_auroc_decides():
    collapsed_high = _meta(0.99, 0.99, True)
    sound_low = _meta(0.70, 0.80, False)
    sound_high = _meta(0.80, 0.70, False)
    unvalidated = CheckpointMeta(config=tiny_config(), threshold=0.5, image_size=64, channels=3)
    ranked = sorted([collapsed_high, sound_low, unvalidated, sound_high], key=candidate_rank, reverse=True)
    assert ranked == [sound_high, sound_low, collapsed_high, unvalidated]


def _write_config(path, **train_fields):
    cfg = tiny_config()
    for k, v in train_fields.items():
        setattr(cfg.train, k, v)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def test_candidates_keep_the_best_self_validated_run_and_write_only_out(tiny_data, tmp_path, capsys):
    cfg = _write_config(tmp_path / "tiny.yaml")
    out_dir = tmp_path / "out"
    out = out_dir / "chosen.safetensors"
    argv = ["train", "--data", str(tiny_data), "--out", str(out), "--config", str(cfg), "--seed", "4"]
    assert run_line.main([*argv, "--candidates", "2"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["chosen.safetensors"]  # no candidate left behind
    meta = read_meta(out)
    rows = meta.training["candidates"]
    assert [r["seed"] for r in rows] == [4, 5]
    assert rows[0]["id"] != rows[1]["id"]  # two runs, two sets of weights
    best = max(rows, key=lambda r: (not r["collapsed"], r["self_val_image_auroc"], r["self_val_pixel_auroc"]))
    assert meta.training["chosen_seed"] == best["seed"] == meta.training["seed"]
    assert meta.id == best["id"]  # the chosen run's weights, not a copy of another's
    assert meta.validation["kept"]["image_auroc"] == best["self_val_image_auroc"]
    assert meta.training["holdout_seed"] == 4  # both runs were validated on the first seed's held-out set
    printed = capsys.readouterr().out
    assert f"{best['seed']} | " in printed and "<- kept" in printed


def test_candidates_without_self_validation_are_refused_before_training(tiny_data, tmp_path, capsys):
    cfg = _write_config(tmp_path / "novalidation.yaml", validate_every=0)
    out = tmp_path / "out" / "c.safetensors"
    argv = ["train", "--data", str(tiny_data), "--out", str(out), "--config", str(cfg), "--candidates", "2"]
    assert run_line.main(argv) == 2
    err = capsys.readouterr().err
    assert "train.validate_every" in err and str(cfg.name) in err and err.count("\n") == 1
    assert not out.parent.exists()
    assert run_line.main([*argv[:-1], "0"]) == 2
    assert "--candidates 0" in capsys.readouterr().err
