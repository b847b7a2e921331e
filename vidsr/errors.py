"""User-facing errors.

Anything a user can cause (bad file, bad flag, bad weights) raises ``VidsrError`` with a message
that fits on one line; the CLI prints it as ``vidsr: error: ...`` and exits non-zero. Everything
else is a bug and keeps its traceback.
"""


class VidsrError(Exception):
    """An error caused by input or settings, reported to the user as one line."""

    exit_code = 2


class InputError(VidsrError):
    """The input file is missing, unreadable, damaged or unsupported."""


class OutputError(VidsrError):
    """The output path cannot be written as asked."""


class WeightsError(VidsrError):
    """A weights file is missing, tampered with or does not fit its architecture."""


class SettingsError(VidsrError):
    """A flag, preset or option has an unknown name or a bad value."""
