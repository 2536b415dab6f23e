"""Checks of raw config values shared by the config's parsers (:mod:`tally.config`,
:mod:`tally.checks_config`): unknown keys with the nearest valid one, numbers, type names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from tally.errors import ConfigError


def check_keys(raw: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
    """ConfigError for the first key of ``raw`` not in ``allowed``, with the nearest one."""
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            valid = ", ".join(allowed)
            raise ConfigError(f"unknown key '{prefix}{key}'{hint} (valid: {valid})")


def is_number(value: object) -> bool:
    """A YAML int or float that fits a float64 (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def type_name(value: object) -> str:
    """How a config error names the type of ``value``: mapping, list, string, boolean, …"""
    return {dict: "mapping", list: "list", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
