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


def at_least(low: int):
    """argparse type for an integer flag of ``low`` or more (a batch of 0 images, a validation
    every 0 steps or a seed of -1 fail later, deep in torch, with a traceback)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(text: str) -> float:
    """argparse type for a finite float flag above 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def run_with_stats(job, stats_path, on_frame, run):
    """``run(job)`` with each frame's record going to the ``--stats`` file (written under a partial
    name, kept only if the run succeeds) and to ``on_frame``; returns what ``run`` returns."""
    from ..io.output_paths import StatsFile

    stats_file = None
    try:
        if stats_path is not None:
            stats_file = StatsFile(stats_path)
        listeners = [f for f in (stats_file.write if stats_file else None, on_frame) if f is not None]
        if listeners:
            job.stats = lambda record: [f(record) for f in listeners]
        result = run(job)
    except BaseException:
        if stats_file is not None:
            stats_file.discard()
        raise
    if stats_file is not None:
        stats_file.commit()
    return result
