"""Exceptions that end a Tally run with a one-line reason.

Every failure a user can cause (a bad config key, a missing column, invalid rows
under ``on_invalid: fail``) raises a subclass of :class:`TallyError`; the CLI
prints its message on one line and exits non-zero without writing anything.
Exit codes: 1 other failure, 2 config, 3 input, 4 invalid rows, 5 output, 6 a
check failed (everything was written; see :class:`ChecksFailedError`).
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


class ChecksFailedError(TallyError):
    """One or more ``checks:`` failed; raised after every table, the checks included, is written.

    ``failures`` holds one line per failed check (``roc_auc >= 0.8 on ALL: 0.7712``);
    the CLI prints each as ``tally: check failed: <line>``.
    """

    exit_code = 6

    def __init__(self, failures: list[str]) -> None:
        super().__init__(f"{len(failures)} check(s) failed")
        self.failures = failures
