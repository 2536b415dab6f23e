"""Identifiers from config and CLI, quoted so that no user value is parsed as SQL."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def quote_identifier(name: str) -> str:
    """Backtick-quote one identifier part (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def column(name: str) -> Column:
    """The top-level column called exactly ``name`` (dots and backticks are not syntax)."""
    return F.col(quote_identifier(name))


def split_table_name(name: str) -> list[str]:
    """Split ``db.table`` (parts may be backtick-quoted) into its unquoted parts."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "`":
            if quoted and i + 1 < len(name) and name[i + 1] == "`":
                current.append("`")
                i += 1
            else:
                quoted = not quoted
        elif ch == "." and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts
