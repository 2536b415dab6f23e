"""An input file that cannot be read (corrupt, half written, gone): one InputError naming it.

A night's folder may hold the leftover of an upstream job that died: a Parquet file
without its footer. Whichever reader meets it, the run ends with exit 3 and one line
naming the file, before anything is written:

* the arrow reader opens files on the driver (to plan its tasks) and in the Python
  workers; both raise :func:`unreadable_file`'s error. Raised in a worker, it reaches
  the driver as the text of a ``PythonException`` (Spark's report of the failed task);
* Spark's reader fails the task with ``FAILED_READ_FILE``, whose message names the file.

:func:`input_error_of` finds the file in either text; within
:func:`unreadable_files_named` such a failure is raised as that InputError.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException

from tally.errors import InputError

#: The start of :func:`unreadable_file`'s message, and Spark's, each followed by the file.
_ARROW = "cannot read input file "
_PATTERNS = (
    re.compile(re.escape(_ARROW) + r"(?P<file>\S+): (?P<why>[^\n]+)"),
    re.compile(
        r"\[FAILED_READ_FILE[.\w]*\] Encountered error while reading file "
        r"(?P<file>\S+?)\.?\s"
    ),
)


def unreadable_file(uri: str, exc: BaseException) -> InputError:
    """The InputError of a file pyarrow cannot open or read (``exc``: pyarrow's error)."""
    why = " ".join(str(exc).split()) or type(exc).__name__
    return InputError(f"{_ARROW}{uri}: {why}")


def input_error_of(exc: BaseException) -> InputError | None:
    """The InputError naming the unreadable file a failed Spark job reports, or None when
    ``exc`` is not about an unreadable file."""
    text = str(exc)
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match is None:
            continue
        why = match.groupdict().get("why") or _cause(text)
        return InputError(f"{_ARROW}{match.group('file')}: {why.strip()}")
    return None


def _cause(text: str) -> str:
    """Spark's innermost ``Caused by:`` line (the reader's own words), else its error class."""
    causes = re.findall(r"Caused by: [\w.$]+: ([^\n]+)", text)
    return causes[-1].strip() if causes else "Spark's reader cannot read it"


@contextmanager
def unreadable_files_named() -> Iterator[None]:
    """Within: a Spark job that fails on an unreadable input file raises the InputError
    naming it (:func:`input_error_of`); any other failure goes on as it is."""
    try:
        yield
    except (Py4JJavaError, PySparkException) as exc:
        error = input_error_of(exc)
        if error is None:
            raise
        raise error from exc
