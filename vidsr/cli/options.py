"""What every ``vidsr`` subcommand's flags share."""

from __future__ import annotations

import argparse
import math

from ..errors import SettingsError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (``vidsr: error: ...``), exit code 2, as every
    other user error is reported."""

    def error(self, message):
        raise SettingsError(message)


def finite_float(text: str) -> float:
    """argparse type for a float flag: a finite number, or the flag is refused. ``float("nan")``
    and ``float("inf")`` parse, but no setting means them, and NaN slips through every range check
    (each comparison with it is false)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value
