"""Number flags: ``float("nan")`` and ``float("inf")`` parse, but no setting means them, and NaN
slips through every range check (each comparison with it is false)."""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """argparse type for a float flag: a finite number, or the flag is refused (one line, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value
