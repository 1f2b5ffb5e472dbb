"""The synthetic BFS vial product: crops of Blow-Fill-Seal strips rendered from a seed.

``render_vial_frame(rng, size, defect)`` draws translucent vial bodies with liquid, a meniscus of varying
height, curvature and tilt, bubbles under it and droplets above it, the plastic web between vials,
lighting variation and position jitter. Defects are drawn inside the vial bodies (the ROI) or, for good
products, on the web outside them. Pure: the same rng state gives the same frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from model.errors import InputError
from model.marks import Placement, ProductFrame, pick_point, smooth_field

DEFECTS = ("dark_spot", "fibre", "scratch")
VialFrame = ProductFrame


def _vial_masks(size: int, rng: np.random.Generator) -> list[tuple[np.ndarray, dict]]:
    """Three vials across the crop with jitter: body + neck mask and the geometry that shades it."""
    s = size
    pitch = s / 3
    jitter_x = rng.uniform(-0.04, 0.04) * s
    top = rng.uniform(0.10, 0.16) * s
    bottom = rng.uniform(0.86, 0.92) * s
    half_w = rng.uniform(0.09, 0.105) * s
    vials = []
    for i in range(3):
        cx = pitch * (i + 0.5) + jitter_x + rng.uniform(-0.01, 0.01) * s
        m = np.zeros((s, s), np.uint8)
        shoulder = top + 0.12 * s
        cv2.rectangle(m, (int(cx - half_w), int(shoulder)), (int(cx + half_w), int(bottom - half_w * 0.6)), 255, -1)
        cv2.ellipse(m, (int(cx), int(bottom - half_w * 0.6)), (int(half_w), int(half_w * 0.6)), 0, 0, 180, 255, -1)
        neck_w = half_w * 0.45
        pts = np.array(
            [[cx - neck_w, top], [cx + neck_w, top], [cx + half_w, shoulder], [cx - half_w, shoulder]], np.int32
        )
        cv2.fillConvexPoly(m, pts, 255)
        vials.append((m, {"cx": cx, "half_w": half_w, "top": top, "shoulder": shoulder, "bottom": bottom}))
    return vials


def _draw_defect(kind: str, centre: tuple[float, float], size: int, rng: np.random.Generator) -> np.ndarray:
    """Float mask in [0, 1] of one defect's opacity (anti-aliased) around ``centre``."""
    s = size
    m = np.zeros((s, s), np.float32)
    cx, cy = centre
    scale = s / 256
    if kind == "dark_spot":
        axes = (max(2, int(rng.uniform(4, 8) * scale)), max(2, int(rng.uniform(3, 7) * scale)))
        cv2.ellipse(m, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
    elif kind == "fibre":
        length = rng.uniform(22, 45) * scale
        angle = rng.uniform(0, np.pi)
        t = np.linspace(-0.5, 0.5, 24)
        bend = rng.uniform(-0.35, 0.35) * length
        xs = cx + np.cos(angle) * t * length - np.sin(angle) * bend * (0.25 - t**2)
        ys = cy + np.sin(angle) * t * length + np.cos(angle) * bend * (0.25 - t**2)
        pts = np.stack([xs, ys], 1).astype(np.int32)
        cv2.polylines(m, [pts], False, 1.0, max(2, int(round(3 * scale))), cv2.LINE_AA)
    else:  # scratch: a straight, thin, long mark
        length = rng.uniform(30, 60) * scale
        angle = rng.uniform(0, np.pi)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        cv2.line(
            m, (int(cx - dx), int(cy - dy)), (int(cx + dx), int(cy + dy)), 1.0, max(2, int(2 * scale)), cv2.LINE_AA
        )
    return m


def render_vial_frame(
    rng: np.random.Generator,
    size: int = 256,
    defect: str | None = None,
    placement: Placement = "inside",
) -> VialFrame:
    """One crop of a BFS strip; ``defect`` in DEFECTS drawn ``inside`` a vial body or ``outside`` on the web."""
    if defect is not None and defect not in DEFECTS:
        raise InputError(f"unknown defect {defect!r}; one of {DEFECTS}")
    s = size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    gain = rng.uniform(0.85, 1.15)
    light_dir = rng.uniform(-1, 1, 2)
    lighting = 1 + 0.12 * (light_dir[0] * (xx / s - 0.5) + light_dir[1] * (yy / s - 0.5))

    # background behind the strip, then the translucent plastic web
    img = np.full((s, s, 3), rng.uniform(35, 55), np.float32)
    web_top, web_bottom = rng.uniform(0.03, 0.07) * s, rng.uniform(0.95, 1.0) * s
    web = ((yy > web_top) & (yy < web_bottom)).astype(np.float32)
    web_tone = np.array([150, 155, 160], np.float32) * rng.uniform(0.9, 1.05)
    web_tex = smooth_field(rng, s, 12, 6.0)
    img = img * (1 - web[..., None]) + (web_tone + web_tex[..., None]) * web[..., None]

    roi = np.zeros((s, s), np.uint8)
    level = rng.uniform(0.38, 0.62)  # liquid level as a fraction of the body, same fill line on a strip
    for mask, g in _vial_masks(s, rng):
        body = mask > 0
        roi |= mask
        u = np.clip((xx - g["cx"]) / g["half_w"], -1, 1)
        shade = 0.75 + 0.35 * (1 - u**2)  # cylinder: bright centre, dark walls
        body_tone = np.array([200, 205, 210], np.float32) * shade[..., None]
        img[body] = body_tone[body]
        # liquid with a meniscus: y_m(x) = level + curvature * u^2 + tilt * u
        y_level = g["shoulder"] + level * (g["bottom"] - g["shoulder"])
        curvature = rng.uniform(2, 7) * s / 256
        tilt = rng.uniform(-4, 4) * s / 256
        y_men = y_level - curvature * (1 - u**2) + tilt * u
        liquid = body & (yy > y_men)
        tint = np.array([0.80, 0.86, 0.95], np.float32) * rng.uniform(0.93, 1.0)
        img[liquid] = img[liquid] * tint
        band = body & (np.abs(yy - y_men) < 1.6 * s / 256)
        img[band] = img[band] * 0.45
        under = body & (yy > y_men + 1.6 * s / 256) & (yy < y_men + 4 * s / 256)
        img[under] = np.minimum(img[under] * 1.12, 255)
        edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        img[edge] *= 0.6
        # bubbles under the meniscus, droplets on the wall above it
        for _ in range(rng.poisson(1.5)):
            bx = g["cx"] + rng.uniform(-0.7, 0.7) * g["half_w"]
            by = y_level + rng.uniform(3, 22) * s / 256
            r = rng.uniform(1.5, 4.0) * s / 256
            cv2.circle(img, (int(bx), int(by)), max(1, int(r)), (235, 240, 245), 1, cv2.LINE_AA)
        for _ in range(rng.poisson(1.2)):
            dx = g["cx"] + rng.uniform(-0.75, 0.75) * g["half_w"]
            dy = g["shoulder"] + rng.uniform(0.05, 0.8) * (y_level - g["shoulder"])
            r = rng.uniform(1.2, 3.0) * s / 256
            cv2.circle(img, (int(dx), int(dy)), max(1, int(r)), (150, 160, 170), -1, cv2.LINE_AA)
            cv2.circle(img, (int(dx - r / 3), int(dy - r / 3)), 1, (250, 250, 250), -1)

    img = img * lighting[..., None] * gain
    defect_mask = np.zeros((s, s), np.uint8)
    if defect is not None:
        margin = max(3, int(6 * s / 256))
        kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
        border = np.zeros((s, s), bool)
        border[2 * margin : s - 2 * margin, 2 * margin : s - 2 * margin] = True
        if placement == "inside":
            region = (cv2.erode(roi, kernel) > 0) & border
            allowed = roi > 0
        else:
            region = (cv2.dilate(roi, kernel) == 0) & (web > 0) & border & (yy > 0.15 * s) & (yy < 0.9 * s)
            allowed = cv2.dilate(roi, np.ones((5, 5), np.uint8)) == 0  # never touches a vial
        opacity = _draw_defect(defect, pick_point(region, rng), s, rng) * allowed
        strength = rng.uniform(0.75, 1.0)
        a = (opacity * strength)[..., None]
        if defect == "scratch":  # a scratch scatters light: darker than what is around it, on body and liquid alike
            img = img * (1 - a) + img * rng.uniform(0.4, 0.6) * a
        else:
            colour = np.array([25, 22, 20], np.float32) * rng.uniform(0.8, 2.0)
            img = img * (1 - a) + colour * a
        defect_mask = ((opacity > 0.25) * 255).astype(np.uint8)

    img = img + rng.normal(0, 2.0, img.shape)
    return VialFrame(np.clip(img, 0, 255).astype(np.uint8), roi, defect_mask)
