"""User-facing errors: what was expected, what came, and a hint. The CLI prints these without a
traceback; library code raises them for bad files, configs and run directories."""

from __future__ import annotations


class RnnkitError(Exception):
    """A mistake the user can fix. ``str(err)`` is the message followed by the hint."""

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__(message + (f"\nhint: {hint}" if hint else ""))


class ConfigError(RnnkitError):
    """An unknown key, a value of the wrong type, or an impossible combination of settings."""


class DataError(RnnkitError):
    """A data file that is missing, empty, binary, not UTF-8, or too small for the settings."""


class RunDirError(RnnkitError):
    """A run directory that is missing, incomplete, or written by another task."""


class Note(UserWarning):
    """Something rnnkit changed to go on (an input resized, say): the CLI prints it as
    ``rnnkit: note: ...``; library callers get a warning they may filter."""
