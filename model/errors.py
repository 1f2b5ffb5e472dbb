"""The project's error classes: the one parent ``run_line.py`` catches and prints as one line (exit 2).

Everything raised for bad input (a file, config key, flag or message) or a machine that lacks something derives
from ``GrdnetError``; anything else is a bug and crashes with its traceback instead of hiding behind one line.
Each class also derives from the builtin it replaced, so code that catches ``ValueError`` or ``RuntimeError``
(a worker judging a bad frame, a config validator) behaves as before."""

from __future__ import annotations


class GrdnetError(Exception):
    """Parent of the errors a user can act on; the message names the file, field or message at fault."""


class InputError(GrdnetError, ValueError):
    """A config file, preset, command-line value, dataset, recording or message that cannot be used."""


class SetupError(GrdnetError, RuntimeError):
    """The machine lacks a program, package, device or service the command needs; the message says how to get it,
    or a process the command started did not come up."""


def first_error(exc) -> str:
    """``key.path: message`` of a pydantic ``ValidationError``'s first error: how every config, checkpoint and
    flag refusal names the field at fault in one line."""
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
