"""What every ``vidsr`` subcommand's flags share."""

from __future__ import annotations

import argparse

from ..errors import SettingsError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one line (``vidsr: error: ...``), exit code 2, as every
    other user error is reported."""

    def error(self, message):
        raise SettingsError(message)
