"""Exceptions that end a Tally run with a one-line reason.

Every failure a user can cause (a bad config key, a missing column, invalid rows
under ``on_invalid: fail``) raises a subclass of :class:`TallyError`; the CLI
prints its message on one line and exits non-zero without writing anything.
"""

from __future__ import annotations


class TallyError(Exception):
    """A user-facing failure: the message names the key, column or value at fault."""

    exit_code: int = 1


class ConfigError(TallyError):
    """The config file or a ``--set`` override is invalid (raised before Spark starts)."""

    exit_code = 2


class InputError(TallyError):
    """The input cannot be evaluated: missing or non-numeric column, missing path or table."""

    exit_code = 3


class InvalidRowsError(TallyError):
    """Invalid rows were found and the config says ``on_invalid: fail``."""

    exit_code = 4


class OutputError(TallyError):
    """The results table exists with another schema, or cannot be written."""

    exit_code = 5
