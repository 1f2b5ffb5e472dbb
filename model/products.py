"""The synthetic product families behind ``synth``, the demo camera and the benchmarks, by name.

Three families that differ in geometry, texture and lighting, so a recipe chosen on some can be reported on
another it was never tuned on: ``vials`` (front-lit BFS strip, three translucent bodies), ``ampoule`` (one
backlit glass ampoule), ``blister`` (tablets under domes on brushed foil).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from model.ampoule import DEFECTS as AMPOULE_DEFECTS
from model.ampoule import render_ampoule_frame
from model.blister import DEFECTS as BLISTER_DEFECTS
from model.blister import render_blister_frame
from model.errors import InputError
from model.marks import Placement, ProductFrame
from model.vials import DEFECTS as VIAL_DEFECTS
from model.vials import render_vial_frame


@dataclass(frozen=True)
class Product:
    name: str
    defects: tuple[str, ...]
    render: Callable[[np.random.Generator, int, str | None, Placement], ProductFrame]


PRODUCTS = {
    p.name: p
    for p in (
        Product("vials", VIAL_DEFECTS, render_vial_frame),
        Product("ampoule", AMPOULE_DEFECTS, render_ampoule_frame),
        Product("blister", BLISTER_DEFECTS, render_blister_frame),
    )
}


def get_product(name: str) -> Product:
    if name not in PRODUCTS:
        raise InputError(f"unknown product {name!r}; one of {', '.join(PRODUCTS)}")
    return PRODUCTS[name]
