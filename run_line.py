#!/usr/bin/env python3
"""The one command-line entry of the GRD-Net inspection line (docs/design.md 3.1). Thin: parses, delegates.

Every command exits 0 on success and non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from cli import engine_commands, line_commands, model_commands
from cli.registry import COMMANDS
from model.errors import GrdnetError, first_error


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_line.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command")
    for group in (line_commands, model_commands, engine_commands):  # the order --help lists them in
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["demo", *argv]  # the embedded default: no command, or only the demo's flags
    args = build_parser().parse_args(argv)
    name = args.command
    try:
        return COMMANDS[name](args)
    except (GrdnetError, OSError) as exc:  # bad input or a machine that lacks something; the rest is a bug
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a config the command built from its flags
        print(f"error: {first_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
