"""``bench --report DIR``: ``DIR/report.html``, one self-contained file (model/html_report.py): the summary, the
table per offered rate, and plots (latency CDF per stage; throughput and p99 against offered rate, knee marked;
batch-size histogram)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.timing import STAGES


def write_report(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model import html_report as h

    figures = []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = result["default_point"]["_rows"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (a, b) in STAGES.items():
        v = np.sort([(r[b] - r[a]) / 1e6 for r in rows])
        if v.size:
            ax.plot(v, np.arange(1, v.size + 1) / v.size, label=name)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("ms")
    ax.set_ylabel("share of frames")
    ax.set_title(f"latency per stage at {result['settings']['default_rate']:.0f} frames/s offered")
    ax.legend()
    figures.append(h.img(h.figure_uri(fig), "latency per stage (CDF)"))

    sweep = result.get("rate_sweep")
    if sweep:
        offered = [p["offered_fps"] for p in sweep]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        a1.plot(offered, [p["line_fps"] for p in sweep], "o-", label="line")
        a1.plot(offered, offered, "k:", label="offered")
        a1.axhline(result["engine_fps"], color="r", ls="--", label="engine alone")
        a2.plot(offered, [p["stages_ms"]["end_to_end"]["p99"] for p in sweep], "o-")
        knee = result.get("knee")
        for ax in (a1, a2):
            if knee:
                ax.axvline(knee["offered_fps"], color="g", ls=":", label="knee")
            ax.set_xlabel("offered frames/s")
        a1.set_ylabel("judged frames/s")
        a2.set_ylabel("end-to-end p99 (ms)")
        a1.legend()
        figures.append(h.img(h.figure_uri(fig), "throughput and end-to-end p99 against offered rate"))

    hist = (sweep[-1] if sweep else result["default_point"])["batch_histogram"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([int(k) for k in hist], list(hist.values()))
    ax.set_xlabel("batch size")
    ax.set_ylabel("frames")
    ax.set_title("batch sizes at the highest offered rate" if sweep else "batch sizes")
    figures.append(h.img(h.figure_uri(fig), "batch sizes"))

    facts = [
        f"engine alone at max batch {result['settings']['max_batch']}: {result['engine_fps']:.1f} frames/s",
        f"line at saturation: {result['line_fps']:.1f} frames/s "
        f"({result['line_fps'] / result['engine_fps']:.2f} x engine alone)",
        f"end-to-end p99 at {result['settings']['default_rate']:.0f} frames/s offered: {result['e2e_p99_ms']:.1f} ms",
    ]
    if result.get("knee"):
        facts.append(
            f"knee (last rate with no late/overload and >= 95 % judged): {result['knee']['offered_fps']:.1f} frames/s"
        )
    if "half_saturation" in result:
        hs = result["half_saturation"]
        facts.append(
            f"at half saturation ({hs['offered_fps']:.1f}/s): e2e p99 {hs['e2e_p99_ms']:.1f} ms, bound "
            f"engine p99 + max wait + 5 ms = {hs['bound_ms']:.1f} ms"
        )
    rows = [
        [
            p["offered_fps"],
            p["line_fps"],
            p["rejected_unjudged"],
            p["stages_ms"]["end_to_end"]["p50"],
            p["stages_ms"]["end_to_end"]["p99"],
        ]
        for p in sweep or [result["default_point"]]
    ]
    doc = h.page(
        f"Line benchmark ({result['model']})",
        h.section("Summary", *(h.para(f) for f in facts)),
        h.section(
            "Per offered rate", h.table(["offered/s", "line/s", "late+overload", "e2e p50 ms", "e2e p99 ms"], rows)
        ),
        h.section("Plots", *figures),
    )
    path = out / "report.html"
    path.write_text(doc)
    return path
