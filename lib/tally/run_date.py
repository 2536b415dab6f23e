"""Run-date placeholders in ``input.where`` and ``input.query``, filled from ``--run-date``.

Placeholders (``{name}`` or ``{name-N}`` / ``{name+N}`` for N days before / after):

===========================  ==========================  ============
placeholder                  meaning                     for 2026-11-22
===========================  ==========================  ============
``{run_date}``               the run date, ISO           ``2026-11-22``
``{run_date_nodash}``        the run date, ``YYYYMMDD``  ``20261122``
``{run_date-3}``             3 days before, ISO          ``2026-11-19``
``{run_date+1}``             1 day after, ISO            ``2026-11-23``
``{run_date_nodash-3}``      3 days before, no dashes    ``20261119``
===========================  ==========================  ============

A literal brace is written twice, as in Python's ``str.format``: ``{{`` renders as
``{`` and ``}}`` as ``}`` (``rlike(id, '^[0-9]{{4}}$')`` reaches Spark as
``rlike(id, '^[0-9]{4}$')``). Any other ``{...}`` is an unknown or malformed
placeholder and a :class:`~tally.errors.ConfigError` naming it, as is a lone brace.

:func:`check_placeholders` needs no date (the config parser runs it);
:func:`render` fills them for one run date, :func:`render_input` those of an
input config. All are pure: no Spark.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol, TypeVar

from tally.errors import ConfigError


class _Rendered(Protocol):
    """What :func:`render_input` fills in: a :class:`tally.config.InputConfig` (the config
    parser imports this module, so it is named by its fields here)."""

    where: str | None
    query: str | None


Source = TypeVar("Source", bound=_Rendered)

#: Placeholder names and how each writes a date.
FORMATS: dict[str, Callable[[dt.date], str]] = {
    "run_date": lambda day: day.isoformat(),
    "run_date_nodash": lambda day: day.isoformat().replace("-", ""),
}
#: Offsets further than this many days are refused as a likely typo (a century).
MAX_OFFSET_DAYS = 36_600

#: ``{{``, ``}}``, a ``{...}`` field (no nested braces), or a lone brace.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
#: The inside of a valid field: a name, optionally ``+N`` or ``-N`` (digits only, no spaces).
_FIELD = re.compile(r"(?P<name>[a-z_]+)(?:(?P<sign>[+-])(?P<days>\d+))?")


def check_placeholders(text: str, key: str) -> None:
    """Raise a ConfigError naming the first unknown or malformed placeholder in ``text``."""
    _substitute(text, key, None)


def render(text: str, run_date: dt.date, key: str) -> str:
    """``text`` with every placeholder filled for ``run_date`` and ``{{``/``}}`` unescaped."""
    return _substitute(text, key, run_date)


def render_input(source: Source, run_date: dt.date) -> Source:
    """``source`` with ``where`` and ``query`` rendered for ``run_date`` (render once)."""
    return replace(
        source,
        where=None if source.where is None else render(source.where, run_date, "input.where"),
        query=None if source.query is None else render(source.query, run_date, "input.query"),
    )


def _substitute(text: str, key: str, run_date: dt.date | None) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        if match.group(1) is None:  # a lone brace
            raise ConfigError(
                f"{key}: lone '{token}' at character {match.start() + 1}; write "
                f"'{token}{token}' for a literal brace, or a placeholder such as {{run_date}}"
            )
        return _field(token, match.group(1), key, run_date)

    return _TOKEN.sub(replace, text)


def _field(token: str, inside: str, key: str, run_date: dt.date | None) -> str:
    """The rendered value of one ``{...}`` field (``""`` when only checking)."""
    field = _FIELD.fullmatch(inside)
    name = field.group("name") if field else re.match(r"[A-Za-z_]*", inside).group(0)
    if name not in FORMATS:
        close = difflib.get_close_matches(name or inside, FORMATS, n=1)
        hint = f"; did you mean {{{close[0]}}}?" if close else ""
        raise ConfigError(
            f"{key}: unknown placeholder {token}{hint} (known: {{run_date}}, "
            "{run_date_nodash}, with an optional -N or +N days; '{{' for a literal brace)"
        )
    if field is None:
        raise ConfigError(
            f"{key}: malformed placeholder {token}; write {{{name}}}, {{{name}-N}} or "
            f"{{{name}+N}} with N a number of days, no spaces"
        )
    days = int(field.group("days") or 0)
    if days > MAX_OFFSET_DAYS:
        raise ConfigError(
            f"{key}: placeholder {token} shifts by {days} days; at most {MAX_OFFSET_DAYS}"
        )
    if run_date is None:
        return ""
    offset = dt.timedelta(days=-days if field.group("sign") == "-" else days)
    try:
        shifted = run_date + offset
    except OverflowError:
        message = f"{key}: placeholder {token} leaves the calendar for run date {run_date}"
        raise ConfigError(message) from None
    return FORMATS[name](shifted)
