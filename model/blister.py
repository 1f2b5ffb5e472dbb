"""The synthetic blister product: a 2 x 3 blister pack of white tablets seen from above through clear domes
on aluminium foil.

Unlike the vial strip and the ampoule: a textured metallic background (brushed foil with printed text), six
small round objects on a grid, specular highlights on the domes, and a break line scored across every tablet
(a dark 1 px line that is normal). Defects at native resolution on a tablet (the ROI): ``speck`` (a dark 2-4
px dot), ``chip`` (a bite out of the tablet's edge), ``crack`` (a 1 px jagged line). Placed ``outside``, the
marks land on the foil (a good pack). Pure: same rng state, same frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.errors import InputError
from model.marks import (
    Placement,
    ProductFrame,
    blend_dark,
    crack,
    finish,
    inside_region,
    outside_region,
    particle,
    pick_point,
    smooth_field,
    speck,
)

DEFECTS = ("speck", "chip", "crack")


def _foil(s: int, rng: np.random.Generator) -> np.ndarray:
    """Brushed aluminium: horizontal streaks over a slow gradient, with rows of printed glyphs."""
    streaks = cv2.resize(rng.normal(0, 1, (s, 6)).astype(np.float32), (s, s), interpolation=cv2.INTER_LINEAR)
    base = rng.uniform(160, 188) + 5.0 * streaks + smooth_field(rng, s, 4, 6.0)
    img = np.repeat(base[..., None], 3, axis=2)
    ink = np.array([60, 60, 110], np.float32) * rng.uniform(0.8, 1.2)
    for row_y in (rng.uniform(0.47, 0.53) * s, rng.uniform(0.015, 0.03) * s, rng.uniform(0.97, 0.985) * s):
        x = rng.uniform(2, 10)
        while x < s - 6:
            w, h = rng.uniform(2, 5), rng.uniform(3, 5)
            if rng.random() < 0.8:
                cv2.rectangle(img, (int(x), int(row_y - h / 2)), (int(x + w), int(row_y + h / 2)), ink.tolist(), -1)
            x += w + rng.uniform(1.5, 4)
    return img


def render_blister_frame(
    rng: np.random.Generator, size: int = 256, defect: str | None = None, placement: Placement = "inside"
) -> ProductFrame:
    """One blister pack; ``defect`` in DEFECTS drawn ``inside`` a tablet or ``outside`` on the foil."""
    if defect is not None and defect not in DEFECTS:
        raise InputError(f"unknown defect {defect!r}; one of {DEFECTS}")
    s, k = size, size / 256
    img = _foil(s, rng).astype(np.float32)
    roi = np.zeros((s, s), np.uint8)
    pitch_x, pitch_y = s / 3, s / 2
    off = rng.uniform(-0.02, 0.02, 2) * s
    r_pocket = rng.uniform(0.145, 0.155) * s
    r_tab = r_pocket * rng.uniform(0.76, 0.82)
    oblong = rng.uniform(1.0, 1.15)
    tablets = []
    for row in range(2):
        for col in range(3):
            cx, cy = pitch_x * (col + 0.5) + off[0], pitch_y * (row + 0.5) + off[1]
            # the dome: a darker disc with a soft shadow ring, a specular arc on its upper left
            cv2.circle(img, (int(cx), int(cy)), int(r_pocket), (120, 122, 126), -1, cv2.LINE_AA)
            cv2.circle(img, (int(cx), int(cy)), int(r_pocket), (85, 85, 90), int(2 * k) + 1, cv2.LINE_AA)
            a0 = rng.uniform(190, 230)
            cv2.ellipse(
                img, (int(cx), int(cy)), (int(r_pocket * 0.9),) * 2, 0, a0, a0 + rng.uniform(25, 60), (250, 250, 250),
                max(1, int(rng.uniform(1, 2.5) * k)), cv2.LINE_AA,
            )  # fmt: skip
            tx, ty = cx + rng.uniform(-3, 3) * k, cy + rng.uniform(-3, 3) * k
            angle = rng.uniform(-15, 15)
            axes = (int(r_tab * oblong), int(r_tab))
            tab = np.zeros((s, s), np.uint8)
            cv2.ellipse(tab, (int(tx), int(ty)), axes, angle, 0, 360, 255, -1, cv2.LINE_AA)
            tab = (tab > 127).astype(np.uint8) * 255
            tablets.append((tab, tx, ty, angle, axes))
            roi |= tab
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    tone = rng.uniform(222, 240)
    for tab, tx, ty, angle, axes in tablets:
        inside = tab > 0
        shade = 1 - 0.08 * ((xx - tx) + (yy - ty)) / (2 * axes[1])  # lit from the upper left
        img[inside] = (tone * shade[inside])[:, None] * np.array([1.0, 0.99, 0.96], np.float32)
        edge = cv2.morphologyEx(tab, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        img[edge] *= 0.75
        # the break line: a scored groove across the tablet, normal
        t = np.deg2rad(angle + 90 + rng.uniform(-4, 4))
        dx, dy = np.cos(t) * axes[1] * 0.8, np.sin(t) * axes[1] * 0.8
        groove = np.zeros((s, s), np.float32)
        p0, p1 = (int((tx - dx) * 16), int((ty - dy) * 16)), (int((tx + dx) * 16), int((ty + dy) * 16))
        cv2.line(groove, p0, p1, 1.0, 1, cv2.LINE_AA, shift=4)
        img = img * (1 - 0.22 * groove[..., None])

    defect_mask = np.zeros((s, s), np.uint8)
    if defect is not None:
        margin = int(5 * k) + 1
        if placement == "inside" and defect == "chip":
            # a bite out of the edge: tablet pixels within r of an edge point show the dome behind
            ring = (cv2.morphologyEx(roi, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0) & (roi > 0)
            border = inside_region(np.full_like(roi, 255), margin)
            c = pick_point(ring & border, rng)
            bite = np.zeros((s, s), np.uint8)
            cv2.circle(bite, (int(c[0]), int(c[1])), int(rng.uniform(4, 8) * k), 255, -1)
            opacity = ((bite > 0) & (roi > 0)).astype(np.float32)
            img = blend_dark(img, opacity, np.array([118, 120, 124], np.float32))
        else:
            region = inside_region(roi, margin) if placement == "inside" else outside_region(roi, margin)
            c = pick_point(region, rng)
            if defect == "crack":
                opacity = crack(s, c, rng.uniform(10, 25) * k, 1, rng)
            elif defect == "speck":
                opacity = speck(s, c, rng.uniform(1.0, 2.0) * k, rng)
            else:  # a chip placed outside: a loose crumb on the foil
                opacity = particle(s, c, rng.uniform(3, 6) * k, rng)
            allowed = (roi > 0) if placement == "inside" else (cv2.dilate(roi, np.ones((5, 5), np.uint8)) == 0)
            opacity = opacity * allowed * rng.uniform(0.7, 1.0)
            img = blend_dark(img, opacity, np.array([70, 50, 35], np.float32) * rng.uniform(0.6, 1.4))
        defect_mask = ((opacity > 0.25) * 255).astype(np.uint8)
    img = img * rng.uniform(0.9, 1.1)
    return ProductFrame(finish(img, rng, 2.0), roi, defect_mask)
