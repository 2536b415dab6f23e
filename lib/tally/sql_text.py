"""SQL text and result text for ``tally sql``: statements split at ``;``, values and tables as text.

Splitting follows Spark SQL's lexer (``SqlBaseLexer.g4``) as far as a ``;`` is concerned: a
``;`` ends a statement unless it sits inside a string literal (``'...'`` or ``"..."`` with
backslash escapes; raw ``r'...'`` / ``r"..."`` without), a back-quoted identifier, a ``--``
comment (to the end of the line) or a ``/* ... */`` comment (nested, as Spark nests them).
A doubled quote (``'it''s'``) needs no rule: it closes and reopens the literal. Nothing here
imports Spark.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import NamedTuple, TextIO


class Statement(NamedTuple):
    """One statement's text (without its ``;``) and the 1-based line it starts on."""

    text: str
    line: int


def _skip_quoted(text: str, i: int, quote: str, escapes: bool) -> int:
    """The index just past the literal opened at ``text[i]`` (``len(text)`` if unclosed)."""
    j = i + 1
    while j < len(text):
        c = text[j]
        if escapes and c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        j += 1
    return len(text)


def _skip_block_comment(text: str, i: int) -> int:
    """The index just past the (possibly nested) ``/* ... */`` comment opened at ``text[i]``."""
    depth, j = 0, i
    while j < len(text):
        pair = text[j : j + 2]
        if pair == "/*":
            depth, j = depth + 1, j + 2
        elif pair == "*/":
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(text)


def _is_raw_prefix(text: str, i: int) -> bool:
    """Whether the quote at ``text[i]`` opens a raw literal (``r'...'``): an ``r`` or ``R``
    just before it that is not the end of a longer word."""
    if i == 0 or text[i - 1] not in "rR":
        return False
    return i == 1 or not (text[i - 2].isalnum() or text[i - 2] == "_")


def _code_spans(text: str) -> Iterable[tuple[int, int, bool]]:
    """``(start, end, is_code)`` pieces of ``text`` in order: code, or a literal/comment."""
    i = start = 0
    while i < len(text):
        c, pair = text[i], text[i : i + 2]
        if c in "'\"`":
            end = _skip_quoted(text, i, c, escapes=c != "`" and not _is_raw_prefix(text, i))
        elif pair == "--":
            newline = text.find("\n", i)
            end = len(text) if newline < 0 else newline
        elif pair == "/*":
            end = _skip_block_comment(text, i)
        else:
            i += 1
            continue
        if start < i:
            yield start, i, True
        yield i, end, False
        i = start = end
    if start < len(text):
        yield start, len(text), True


def is_blank(text: str) -> bool:
    """Whether ``text`` holds nothing but whitespace and comments."""
    for start, end, is_code in _code_spans(text):
        piece = text[start:end]
        if is_code and piece.strip():
            return False
        if not is_code and not (
            piece.startswith("--") or (piece.startswith("/*") and piece.endswith("*/"))
        ):
            return False  # a literal, a quoted identifier or an unclosed comment
    return True


def split_statements(text: str) -> tuple[list[Statement], str]:
    """The complete (``;``-terminated) statements of ``text``, and what follows the last ``;``.

    Statements that hold only whitespace and comments are dropped; the rest keep their
    comments (Spark ignores them). The remainder is the text of an unfinished statement:
    the prompt keeps reading lines into it, a file's last statement may be it.
    """
    statements: list[Statement] = []
    begin = 0
    for start, end, is_code in _code_spans(text):
        if not is_code:
            continue
        at = text.find(";", start, end)
        while at >= 0:
            _append(statements, text, begin, at)
            begin = at + 1
            at = text.find(";", begin, end)
    return statements, text[begin:]


def all_statements(text: str) -> list[Statement]:
    """Every statement of a script: the ``;``-terminated ones and a last one without ``;``."""
    statements, rest = split_statements(text)
    _append(statements, text, len(text) - len(rest), len(text))
    return statements


def _append(statements: list[Statement], text: str, begin: int, end: int) -> None:
    piece = text[begin:end]
    if is_blank(piece):
        return
    stripped = piece.lstrip()
    line = text.count("\n", 0, begin + len(piece) - len(stripped)) + 1
    statements.append(Statement(stripped.rstrip(), line))


def format_value(value: object) -> str:
    """A cell as text: null as the empty string, a float by ``repr`` (every digit kept)."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def print_table(
    header: Sequence[str], cells: Sequence[Sequence[str]], out: TextIO | None = None
) -> None:
    """Left-aligned columns two spaces apart, under a header and a rule of dashes (to stdout
    unless ``out`` is given)."""
    out = out or sys.stdout
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)), file=out)
