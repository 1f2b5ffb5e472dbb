"""``bench --report DIR``: a Markdown summary and PNG plots (latency CDF per stage; throughput and p99 against
offered rate, knee marked; batch-size histogram)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.timing import STAGES


def write_report(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.savefig(out / "latency_cdf.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

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
        fig.savefig(out / "throughput_latency.png", dpi=100, bbox_inches="tight")
        plt.close(fig)

    hist = (sweep[-1] if sweep else result["default_point"])["batch_histogram"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([int(k) for k in hist], list(hist.values()))
    ax.set_xlabel("batch size")
    ax.set_ylabel("frames")
    ax.set_title("batch sizes at the highest offered rate" if sweep else "batch sizes")
    fig.savefig(out / "batch_sizes.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    lines = [
        f"# Line benchmark ({result['model']})",
        "",
        f"- engine alone at max batch {result['settings']['max_batch']}: {result['engine_fps']:.1f} frames/s",
        f"- line at saturation: {result['line_fps']:.1f} frames/s "
        f"({result['line_fps'] / result['engine_fps']:.2f} x engine alone)",
        f"- end-to-end p99 at {result['settings']['default_rate']:.0f} frames/s offered: {result['e2e_p99_ms']:.1f} ms",
    ]
    if result.get("knee"):
        lines.append(
            f"- knee (last rate with no late/overload and >= 95 % judged): {result['knee']['offered_fps']:.1f} frames/s"
        )
    if "half_saturation" in result:
        h = result["half_saturation"]
        lines.append(
            f"- at half saturation ({h['offered_fps']:.1f}/s): e2e p99 {h['e2e_p99_ms']:.1f} ms, bound "
            f"engine p99 + max wait + 5 ms = {h['bound_ms']:.1f} ms"
        )
    lines += ["", "| offered/s | line/s | late+overload | e2e p50 ms | e2e p99 ms |", "| --- | --- | --- | --- | --- |"]
    for p in sweep or [result["default_point"]]:
        e = p["stages_ms"]["end_to_end"]
        lines.append(
            f"| {p['offered_fps']:.1f} | {p['line_fps']:.1f} | {p['rejected_unjudged']} | {e['p50']:.1f} | "
            f"{e['p99']:.1f} |"
        )
    lines += [
        "",
        "![latency CDF](latency_cdf.png)",
        "![throughput and p99](throughput_latency.png)",
        "![batch sizes](batch_sizes.png)",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
