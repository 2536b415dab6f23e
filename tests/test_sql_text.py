"""Statement splitting and result text of ``tally sql`` (tally.sql_text), without Spark.

The splitting cases are written by hand from Spark SQL's lexer rules (string literals with
backslash escapes, raw literals, back-quoted identifiers, ``--`` and nested ``/* */``
comments); tests/test_sql_shell.py runs such a script through Spark itself.
"""

from __future__ import annotations

import io

import pytest

from tally.sql_text import (
    Statement,
    all_statements,
    format_value,
    is_blank,
    print_table,
    split_statements,
)


def texts(script: str) -> list[str]:
    return [s.text for s in all_statements(script)]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT 1;SELECT 2", ["SELECT 1", "SELECT 2"]),  # the last needs no ;
        ("SELECT 'a;b'; SELECT 2", ["SELECT 'a;b'", "SELECT 2"]),
        ('SELECT "a;b" AS x; SELECT 2', ['SELECT "a;b" AS x', "SELECT 2"]),
        ("SELECT 1 AS `a;b`; SELECT 2", ["SELECT 1 AS `a;b`", "SELECT 2"]),
        ("SELECT 1 AS `a``;b`; SELECT 2", ["SELECT 1 AS `a``;b`", "SELECT 2"]),
        ("SELECT 'it''s;'; SELECT 2", ["SELECT 'it''s;'", "SELECT 2"]),
        ("SELECT 'a\\';b'; SELECT 2", ["SELECT 'a\\';b'", "SELECT 2"]),  # \' stays in
        ("SELECT 'a\\\\'; SELECT 2", ["SELECT 'a\\\\'", "SELECT 2"]),  # \\ then the quote
        ("SELECT r'a\\'; SELECT 2", ["SELECT r'a\\'", "SELECT 2"]),  # raw: \ ends nothing
        ('SELECT R"a\\"; SELECT 2', ['SELECT R"a\\"', "SELECT 2"]),
        ("SELECT bar'x;y'", ["SELECT bar'x;y'"]),  # r ends a word: not a raw literal
        ("SELECT 1 -- one; two\n; SELECT 2", ["SELECT 1 -- one; two", "SELECT 2"]),
        ("SELECT /* a; /* b; */ c; */ 1; SELECT 2", ["SELECT /* a; /* b; */ c; */ 1", "SELECT 2"]),
        ("SELECT 1;;\n;  ; SELECT 2", ["SELECT 1", "SELECT 2"]),  # empty statements dropped
        ("SELECT 1; -- the end;\n/* really; */", ["SELECT 1"]),  # comments alone dropped
        ("", []),
    ],
)
def test_statements_end_at_semicolons_outside_literals_and_comments(script, expected):
    assert texts(script) == expected


def test_the_remainder_is_what_follows_the_last_semicolon():
    done, rest = split_statements("SELECT 1; SELECT 'a;\nb")
    assert done == [Statement("SELECT 1", 1)]
    assert rest == " SELECT 'a;\nb"  # an open literal: the prompt reads on
    done, rest = split_statements("SELECT 1 /* open; comment")
    assert done == [] and not is_blank(rest)


def test_statements_know_their_first_line():
    script = "SELECT 1;\n\n  SELECT\n 2;\n-- c\nSELECT 3"
    assert all_statements(script) == [
        Statement("SELECT 1", 1),
        Statement("SELECT\n 2", 3),
        Statement("-- c\nSELECT 3", 5),
    ]


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        ("  \n\t", True),
        ("-- x\n /* y */ ", True),
        ("/* a /* b */ c */", True),
        ("/* unclosed", False),
        ("''", False),
        ("x", False),
    ],
)
def test_blank_is_whitespace_and_closed_comments(text, blank):
    assert is_blank(text) is blank


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (0.1, "0.1"), (1 / 3, "0.3333333333333333"), (2, "2"), ("a b", "a b")],
)
def test_values_print_with_every_digit_and_null_as_empty(value, text):
    assert format_value(value) == text
    if isinstance(value, float):
        assert float(text) == value


def test_a_table_pads_columns_to_their_widest_cell():
    out = io.StringIO()
    print_table(["a", "long"], [["xyz", "1"], ["", "22"]], out)
    assert out.getvalue().splitlines() == [
        "a    long",
        "---  ----",
        "xyz  1   ",
        "     22  ",
    ]
