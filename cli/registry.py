"""The table ``run_line.py`` dispatches on, and the flags and defaults several commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from engines.select import KINDS  # light: no runtime is imported until an engine is opened

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    """Register the decorated function as subcommand ``name``'s handler."""

    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return deco


def line_flags(p: argparse.ArgumentParser) -> None:
    """The flags of every command that runs the line on this host (demo, replay)."""
    p.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/0", help="a local redis-server is started when none answers here"
    )
    p.add_argument("--engine", default="auto", choices=KINDS)
    p.add_argument("--summary-json", help="write the run's summary here")
    p.add_argument("--page-port", type=int, default=8088, help="the live line page (a free port if this one is taken)")
    p.add_argument("--no-page", action="store_true", help="run without the live line page")


def bundled_checkpoint() -> Path:
    """The checkpoint the line uses when none is named (imported late: model.checkpoint pulls in torch)."""
    from model.checkpoint import BUNDLED_CHECKPOINT

    return BUNDLED_CHECKPOINT
