"""``bench --sweep page``: what the live line page costs a saturated line, with a headless browser watching it.

Two figures from the same runs: the line's throughput with and without the page (alternating pairs, like the
ledger's A/B: a shared 2-core machine drifts by more than 1 % between points), and the CPU the page process and
the browser took during the runs with the page, as a share of all cores (what they took from the line when it
wants every core). Also how often the page really updated in the browser."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pipeline.proc_cpu import tree_cpu_seconds


def wait_until_served(url: str, timeout_s: float = 60.0) -> None:
    """The page process starts beside the workers and may still be importing when the line is up."""
    import urllib.request

    end = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "api/state", timeout=2):
                return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def watch_page(sup) -> Callable[[], dict]:
    """Open the page of a started line in headless chromium; the returned function stops watching and gives
    the page's and the browser's CPU seconds, the wall time and the updates the browser drew."""
    from selenium.webdriver.support.ui import WebDriverWait

    from pipeline.browser import headless_chromium

    page_pid = sup.page[0].proc.pid
    wait_until_served(sup.page_address())
    browser = headless_chromium()
    browser.get(sup.page_address())
    WebDriverWait(browser, 30, poll_frequency=0.1).until(lambda d: d.execute_script("return document.body.dataset.seq"))
    browser_pid = browser.service.process.pid

    def seq() -> int:
        return int(browser.execute_script("return document.body.dataset.seq"))

    t0, page0, browser0, seq0 = time.monotonic(), tree_cpu_seconds(page_pid), tree_cpu_seconds(browser_pid), seq()

    def finish() -> dict:
        wall = time.monotonic() - t0
        out = {
            "wall_s": wall,
            "page_cpu_s": tree_cpu_seconds(page_pid) - page0,
            "browser_cpu_s": tree_cpu_seconds(browser_pid) - browser0,
            "updates_per_s": (seq() - seq0) / wall if wall > 0 else float("nan"),
        }
        browser.quit()
        return out

    return finish


def page_cost(line_point, capacity: float, log=print, pairs: int = 3) -> dict:
    """``line_point(page: bool, attach)`` runs one saturated point; alternating pairs with and without the page."""
    import numpy as np

    ratios: dict[bool, list[float]] = {True: [], False: []}
    watched: list[dict] = []
    for i in range(pairs):
        for on in (True, False) if i % 2 == 0 else (False, True):
            p = line_point(on, watch_page if on else None)
            ratios[on].append(p["line_fps"] / capacity)
            if on:
                watched.append(p["attached"])
            log(f"page {'on ' if on else 'off'}: line {p['line_fps']:.2f}/s = {ratios[on][-1]:.3f} x engine")
    cores = os.cpu_count() or 1
    wall = sum(w["wall_s"] for w in watched)
    page_cpu, browser_cpu = sum(w["page_cpu_s"] for w in watched), sum(w["browser_cpu_s"] for w in watched)
    with_p, without = float(np.median(ratios[True])), float(np.median(ratios[False]))
    return {
        "line_over_engine_with_page": with_p,
        "line_over_engine_without_page": without,
        "throughput_cost_fraction": 1 - with_p / without,
        "page_cpu_share": page_cpu / (wall * cores),
        "browser_cpu_share": browser_cpu / (wall * cores),
        "updates_per_s": [w["updates_per_s"] for w in watched],
        "points": {"with": ratios[True], "without": ratios[False]},
    }
