"""The slice values of an Arrow batch: each row's group, and rows per value.

Values are the strings Spark's ``cast(... as string)`` gives (``12``, ``true``), a null
as None, so that both readers key slices alike (:func:`tally.plan.slice_label`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def slice_groups(batch: pa.RecordBatch, names: Sequence[str]) -> tuple[np.ndarray, list[tuple]]:
    """Each row's slice group (0…G−1) over the columns ``names`` and each group's values.

    Values are strings as Spark casts them (``12``, ``true``), null as None; a column may
    come dictionary-encoded (the arrow reader reads stored strings so).
    """
    codes = np.zeros(batch.num_rows, np.int64)
    space = 1  # codes are below this
    dictionaries = []
    for name in names:
        values = batch.column(name)
        encoded = (
            values
            if pa.types.is_dictionary(values.type)
            else pc.dictionary_encode(values, null_encoding="encode")
        )
        dictionary = encoded.dictionary
        if not pa.types.is_string(dictionary.type):
            dictionary = pc.cast(dictionary, pa.string())
        words = dictionary.to_pylist()
        indices = encoded.indices
        if indices.null_count:
            indices = pc.fill_null(indices, len(words))
            words.append(None)
        dictionaries.append(words)
        codes = codes * (len(words) + 1) + np.asarray(
            indices.to_numpy(zero_copy_only=False), np.int64
        )
        space *= len(words) + 1
    unique, groups = _unique_codes(codes, space)
    values = []
    for code in unique.tolist():
        parts = []
        for words in reversed(dictionaries):
            code, at = divmod(code, len(words) + 1)
            parts.append(words[at])
        values.append(tuple(reversed(parts)))
    return groups, values


def _unique_codes(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for codes in ``[0, space)``.

    When ``space`` is at most the number of codes (one dictionary's values, or a few
    small ones combined), the codes present are marked in a ``space``-long table, one
    linear pass, instead of sorted.
    """
    if space > max(len(codes), 1024):
        return np.unique(codes, return_inverse=True)
    present = np.bincount(codes, minlength=space) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[codes]


def slice_value_rows(
    batches: Iterator[pa.RecordBatch], spec_columns: Sequence[Sequence[str]]
) -> list[dict[tuple, int]]:
    """Rows per slice value of each spec (every row, invalid ones too, as Spark SQL ranks)."""
    counts: list[dict[tuple, int]] = [{} for _ in spec_columns]
    for batch in batches:
        for names, found in zip(spec_columns, counts, strict=True):
            groups, values = slice_groups(batch, list(names))
            rows = np.bincount(groups, minlength=len(values)).tolist()
            for value, n in zip(values, rows, strict=True):
                found[value] = found.get(value, 0) + n
    return counts


def add_value_rows(a: list[dict[tuple, int]], b: list[dict[tuple, int]]) -> list[dict[tuple, int]]:
    """:func:`slice_value_rows` of two sets of rows added (into ``a``)."""
    for mine, theirs in zip(a, b, strict=True):
        for value, n in theirs.items():
            mine[value] = mine.get(value, 0) + n
    return a
