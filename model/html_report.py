"""Self-contained HTML reports: every figure and image embedded as a data URI, so one file opens in any browser
without a server and can be mailed or archived as it is (``evaluate --report``, ``bench --report``)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

import cv2
import numpy as np

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1150px; color: #1d2330; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: .5em 0; }
th, td { padding: .2em .6em; border-bottom: 1px solid #e3e6eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: .4em; vertical-align: top; }
figure img { max-width: 100%; image-rendering: pixelated; }
figcaption { font-size: .85em; color: #444; }
.muted { color: #666; font-size: .9em; }
"""


def figure_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_uri(rgb: np.ndarray) -> str:
    """An RGB uint8 image as a PNG data URI."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("image could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


def img(uri: str, caption: str = "", width: int | None = None) -> str:
    w = f' style="width:{width}px"' if width else ""
    cap = html.escape(caption)
    return f'<figure{w}><img src="{uri}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def table(header: list[str], rows: Iterable[list[object]]) -> str:
    def fmt(x: object) -> str:
        if isinstance(x, float):
            return "-" if x != x else f"{x:.3f}"
        return "-" if x is None else str(x)

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(title: str, *parts: str) -> str:
    return f"<h2>{html.escape(title)}</h2>" + "".join(parts)


def para(text: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<p{c}>{html.escape(text)}</p>"


def page(title: str, *sections: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>"
    )
