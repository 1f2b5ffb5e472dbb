"""The synthetic ampoule product: one glass ampoule on a conveyor, seen against a backlight.

Unlike the vial strip (front-lit plastic, three bodies, colour), this is a bright background with a dark
silhouette: refraction darkens the glass walls, the liquid (clear or amber) fills most of the body under a
meniscus, a printed break ring sits on the neck and the bulb above it. Normal variation that resembles
defects: gas bubbles in the liquid (dark rims around bright cores), a reflection streak on the glass, dust on
the belt and the backlight (outside the ROI). Defects at native resolution inside the body (the ROI):
``particle`` (a dark clump of 3-6 px), ``crack`` (a 1 px jagged line), ``speck`` (a 2-4 px dot). Pure: same rng
state, same frame.
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

DEFECTS = ("particle", "crack", "speck")


def _silhouette(s: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """(whole ampoule mask, body mask = ROI, geometry)."""
    cx = s / 2 + rng.uniform(-0.05, 0.05) * s
    hw = rng.uniform(0.13, 0.15) * s
    top = rng.uniform(0.34, 0.38) * s
    bottom = rng.uniform(0.91, 0.94) * s
    neck_y = top - 0.08 * s
    neck_hw, bulb_hw = 0.045 * s, 0.07 * s
    body = np.zeros((s, s), np.uint8)
    r = int(0.35 * hw)
    cv2.rectangle(body, (int(cx - hw), int(top)), (int(cx + hw), int(bottom - r)), 255, -1)
    cv2.rectangle(body, (int(cx - hw + r), int(bottom - r)), (int(cx + hw - r), int(bottom)), 255, -1)
    for sx in (-1, 1):
        cv2.circle(body, (int(cx + sx * (hw - r)), int(bottom - r)), r, 255, -1)
    whole = body.copy()
    shoulder = np.array(
        [[cx - hw, top + 1], [cx + hw, top + 1], [cx + neck_hw, neck_y], [cx - neck_hw, neck_y]], np.int32
    )
    cv2.fillConvexPoly(whole, shoulder, 255)
    cv2.fillConvexPoly(body, shoulder, 255)  # the shoulder holds liquid too: it is inspected
    tip = 0.06 * s
    cv2.ellipse(whole, (int(cx), int((neck_y + tip) / 2)), (int(bulb_hw), int((neck_y - tip) / 2)), 0, 0, 360, 255, -1)
    cv2.rectangle(whole, (int(cx - neck_hw), int(neck_y - 4)), (int(cx + neck_hw), int(neck_y + 4)), 255, -1)
    return whole, body, {"cx": cx, "hw": hw, "top": top, "bottom": bottom, "neck_y": neck_y, "neck_hw": neck_hw}


def render_ampoule_frame(
    rng: np.random.Generator, size: int = 256, defect: str | None = None, placement: Placement = "inside"
) -> ProductFrame:
    """One backlit ampoule; ``defect`` in DEFECTS drawn ``inside`` the body or ``outside`` it (belt, bulb)."""
    if defect is not None and defect not in DEFECTS:
        raise InputError(f"unknown defect {defect!r}; one of {DEFECTS}")
    s, k = size, size / 256
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    back = rng.uniform(195, 228) * (1 - 0.10 * (yy / s)) + smooth_field(rng, s, 5, 4.0)
    img = np.repeat(back[..., None], 3, axis=2).astype(np.float32)
    # the conveyor belt at the bottom edge: darker, textured
    belt = yy > rng.uniform(0.955, 0.975) * s
    img[belt] = (rng.uniform(90, 120) + smooth_field(rng, s, 24, 8.0)[belt])[:, None]

    whole, body, g = _silhouette(s, rng)
    glass = whole > 0
    u = np.clip((xx - g["cx"]) / g["hw"], -1, 1)
    transmission = 0.90 - 0.55 * np.abs(u) ** 6  # refraction darkens the walls
    img[glass] *= transmission[glass][:, None]
    edge = cv2.morphologyEx(whole, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    img[edge] *= 0.35
    # liquid: clear or amber, under a meniscus curved by the walls
    level = g["top"] + rng.uniform(0.05, 0.25) * (g["bottom"] - g["top"])
    y_men = level - rng.uniform(2, 5) * k * (1 - u**2) + rng.uniform(-2, 2) * k * u
    liquid = (body > 0) & (yy > y_men)
    tint = np.array([0.97, 0.82, 0.55] if rng.random() < 0.5 else [0.93, 0.96, 0.99], np.float32)
    img[liquid] *= tint * rng.uniform(0.9, 1.0)
    band = (body > 0) & (np.abs(yy - y_men) < 1.3 * k)
    img[band] *= 0.4
    # a reflection streak on the glass
    su = rng.uniform(-0.6, -0.3)
    streak = glass & (np.abs(u - su) < rng.uniform(0.03, 0.06))
    img[streak] = np.minimum(img[streak] + rng.uniform(12, 30), 255)
    # printed break ring on the neck
    ring_y = int(g["neck_y"] - 2 * k)
    colour = np.array([200, 40, 40] if rng.random() < 0.5 else [40, 70, 190], np.float32)
    ring = glass & (np.abs(yy - ring_y) < 1.6 * k)
    img[ring] = colour * 0.8
    # gas bubbles in the liquid, normal: under a backlight a dark rim around a bright core, at least 5 px across
    # (smaller, a bubble is a dark dot that no one, person or model, could tell from a speck)
    for _ in range(rng.poisson(2.0)):
        bx = g["cx"] + rng.uniform(-0.75, 0.75) * g["hw"]
        by = level + rng.uniform(4, 40) * k
        r = rng.uniform(2.5, 5.0) * k
        c = (int(bx * 16), int(by * 16))
        cv2.circle(img, c, int(r * 16), (95, 95, 95), 1, cv2.LINE_AA, shift=4)
        cv2.circle(img, c, int(r * 0.45 * 16), (245, 245, 245), -1, cv2.LINE_AA, shift=4)
    roi = body
    # dust on the backlight and the belt: normal, outside the ROI
    dust_region = outside_region(roi, int(4 * k) + 1)
    for _ in range(rng.poisson(3.0)):
        img = blend_dark(img, speck(s, pick_point(dust_region, rng), rng.uniform(0.7, 1.8) * k, rng) * 0.8, 60.0)

    gain = rng.uniform(0.88, 1.12)
    img *= gain
    defect_mask = np.zeros((s, s), np.uint8)
    if defect is not None:
        margin = int(6 * k) + 1
        region = inside_region(roi, margin) if placement == "inside" else outside_region(roi, margin)
        c = pick_point(region, rng)
        if defect == "particle":
            opacity = particle(s, c, rng.uniform(3, 6) * k, rng)
        elif defect == "crack":
            opacity = crack(s, c, rng.uniform(15, 40) * k, 1, rng)
        else:
            opacity = speck(s, c, rng.uniform(1.0, 2.0) * k, rng)
        allowed = (roi > 0) if placement == "inside" else (cv2.dilate(roi, np.ones((5, 5), np.uint8)) == 0)
        opacity = opacity * allowed * rng.uniform(0.7, 1.0)
        img = blend_dark(img, opacity, np.array([35, 30, 28], np.float32) * rng.uniform(0.8, 2.2))
        defect_mask = ((opacity > 0.25) * 255).astype(np.uint8)
    return ProductFrame(finish(img, rng, 2.0), roi, defect_mask)
