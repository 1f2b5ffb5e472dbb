import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from model import metrics


def test_image_auroc_and_f1_max_on_fixed_scores():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.3, 0.9])
    assert metrics.image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    # brute force: best F1 over every threshold
    best = 0.0
    for t in scores:
        pred = scores >= t
        tp, fp, fn = (pred & (labels == 1)).sum(), (pred & (labels == 0)).sum(), (~pred & (labels == 1)).sum()
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    assert metrics.f1_max(labels, scores) == pytest.approx(best)


def test_operating_point_rates():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.6, 0.2, 0.3, 0.7, 0.4])
    op = metrics.operating_point(labels, scores, threshold=0.5)
    assert op["false_reject_rate"] == pytest.approx(1 / 4)
    assert op["escape_rate"] == pytest.approx(1 / 2)
    assert op["accuracy"] == pytest.approx(4 / 6)


def test_pixel_auroc_matches_sklearn():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 8, 8))
    masks = (rng.random((3, 8, 8)) > 0.8).astype(np.float32)
    assert metrics.pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(masks.ravel() > 0.5, maps.ravel()))


def test_aupro_perfect_and_partial():
    masks = np.zeros((2, 16, 16), np.float32)
    masks[0, 2:5, 2:5] = 1
    masks[1, 10:14, 10:12] = 1
    assert metrics.aupro(masks.copy(), masks) == pytest.approx(1.0, abs=1e-2)
    # one region found, the other scored like the background: PRO = 0.5 over the whole FPR range
    maps = np.where(masks > 0, 0.0, 0.5).astype(np.float32)
    maps[0, 2:5, 2:5] = 1.0
    rng = np.random.default_rng(1)
    maps += rng.random(maps.shape).astype(np.float32) * 1e-3
    assert 0.45 < metrics.aupro(maps, masks) < 0.6


def test_evaluate_cli_json_contract(tiny_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "eval.json"
    rep = tmp_path / "report"
    r = subprocess.run(
        [
            sys.executable,
            "run_line.py",
            "evaluate",
            "--data",
            str(tiny_data),
            "--checkpoint",
            str(tiny_checkpoint),
            "--json",
            str(out),
            "--report",
            str(rep),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert set(doc["summary"]) >= {
        "image_auroc",
        "pixel_auroc",
        "aupro",
        "f1_max",
        "threshold",
        "accuracy",
        "false_reject_rate",
        "escape_rate",
    }
    n_test = sum(1 for _ in (tiny_data / "test").rglob("*.png"))
    assert len(doc["images"]) == n_test
    assert all(set(row) == {"path", "label", "score", "reject"} for row in doc["images"])
    assert all(row["reject"] == (row["score"] > doc["summary"]["threshold"]) for row in doc["images"])
    assert {"dark_spot", "fibre", "scratch", "good"} <= set(doc["per_class"])
    # the fewest escapes any threshold allows at FRR 0.02 of plain good, recomputed from the per-image rows
    rows = [r for r in doc["images"] if not Path(r["path"]).name.startswith("outside_roi")]
    good = sorted((r["score"] for r in rows if r["label"] == "good"), reverse=True)
    allowed = int(0.02 * len(good))  # good images a threshold may reject
    t = good[allowed] if allowed < len(good) else -np.inf  # reject > t: at most `allowed` good above it
    bad = [r["score"] for r in rows if r["label"] != "good"]
    expected = float(np.mean([b <= t for b in bad]))
    assert doc["summary"]["best_escape_at_frr_0.02"] == pytest.approx(expected, abs=1e-6)
    assert "best escape at FRR 0.02, any threshold:" in r.stdout
    html = (rep / "report.html").read_text()  # one self-contained page: its figures embedded, no loose files
    assert html.count("data:image/png;base64,") > 3 and not list(rep.glob("*.png"))
    assert "image AUROC" in r.stdout


@pytest.mark.parametrize("a,b", itertools.combinations([0.0, 1.0], 2))
def test_single_class_metrics_are_nan_not_errors(a, b):
    labels = np.zeros(4, int)
    assert np.isnan(metrics.image_auroc(labels, np.array([a, b, a, b])))
    assert np.isnan(metrics.f1_max(labels, np.array([a, b, a, b])))
    assert json.dumps(None) == "null"
