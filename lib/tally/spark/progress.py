"""Stage progress in the job's log, for long runs (not only Spark's console bar).

``with log_progress(spark, "evaluate demo 2026-11-22"):`` starts a daemon
thread that logs, every ``every_seconds``, one line to this module's logger::

    evaluate demo 2026-11-22: 60.2 s; stage 3 (toArrow at cells.py:158) 37/200 tasks;
    1,234,567 input records read

and, when the block ends (normally or by an exception), one line with the total
time. Stages and tasks come from the public status tracker
(``sc.statusTracker()``: active stages, completed and total tasks).

Input records are not in PySpark's status tracker. They are read, best effort,
through py4j: the jobs started by the block's thread carry a job tag
(``sc.addJobTag``, removed at the end), ``getJobIdsForTag`` lists them, and the
driver's status store (``sc.statusStore().lastStageAttempt(id).inputRecords()``)
gives each of their stages' input records. Spark adds a task's records when the
task ends, so the number grows with finished tasks; it counts records read from
files or tables, and also from cached data. The closing line first waits (at most
2 s) for Spark's listener bus to deliver the last task events. Where that is not readable (Spark
Connect, another Spark version) the lines leave it out.

Nothing here ever raises into the job: a failed poll is logged at debug level
and polling goes on; an exception of the block propagates unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

#: stage states after which a stage's input records no longer change
_FINAL_STAGE_STATES = frozenset({"COMPLETE", "FAILED", "SKIPPED"})


class ProgressLogger:
    """The polling thread behind :func:`log_progress` (one per ``with`` block)."""

    def __init__(
        self, spark: Any, label: str, every_seconds: float = 30.0, records: bool = True
    ) -> None:
        self.label = label
        self.every_seconds = max(float(every_seconds), 0.05)
        self.started = time.monotonic()
        self._spark = spark
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._tag: str | None = None
        self._records_ok = records
        #: input records of finished stages (they no longer change)
        self._final_records: dict[int, int] = {}

    @property
    def thread(self) -> threading.Thread | None:
        """The polling thread (None when it could not start)."""
        return self._thread

    def elapsed(self) -> float:
        """Seconds since the block started."""
        return time.monotonic() - self.started

    # -- lifecycle

    def start(self) -> None:
        """Tag the calling thread's jobs and start polling (never raises)."""
        try:
            tag = f"tally-progress-{uuid.uuid4().hex[:12]}"
            self._spark.sparkContext.addJobTag(tag)
            self._tag = tag
        except Exception:
            self._records_ok = False
            log.debug("%s: no job tag, input records left out", self.label, exc_info=True)
        try:
            thread = threading.Thread(
                target=self._run, name=f"tally-progress[{self.label}]", daemon=True
            )
            thread.start()
            self._thread = thread
        except Exception:
            log.debug("%s: progress thread not started", self.label, exc_info=True)

    def stop(self, failed: bool = False) -> None:
        """Stop and join the thread, log the total time, remove the job tag (never raises)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        if self._tag is not None and self._records_ok:
            self._drain_listener_bus()
        records = self.records_read()
        read = "" if records is None else f"; {records:,} input records read"
        outcome = "failed after" if failed else "done in"
        log.info("%s: %s %.1f s%s", self.label, outcome, self.elapsed(), read)
        if self._tag is not None:
            try:
                self._spark.sparkContext.removeJobTag(self._tag)
            except Exception:
                log.debug("%s: job tag not removed", self.label, exc_info=True)

    def _drain_listener_bus(self, timeout_ms: int = 2000) -> None:
        """Let the status store take in the last task-end events (at most ``timeout_ms``).

        Spark updates it from an asynchronous listener bus; without this the total
        could miss the records of the tasks that ended just before the block did.
        ``listenerBus`` is internal to Spark, hence best effort.
        """
        try:
            self._spark.sparkContext._jsc.sc().listenerBus().waitUntilEmpty(timeout_ms)
        except Exception:
            log.debug("%s: listener bus not drained", self.label, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                line = self.progress_line()
            except Exception:
                log.debug("%s: progress poll failed", self.label, exc_info=True)
                continue
            if not self._stop.is_set():
                log.info("%s", line)

    # -- what one line says

    def progress_line(self) -> str:
        """``<label>: <s> s; stage <id> (<name>) <done>/<total> tasks; …; <n> input records``."""
        tracker = self._spark.sparkContext.statusTracker()
        stages = []
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info is None:  # finished between the two calls
                continue
            failed = f", {info.numFailedTasks} failed" if info.numFailedTasks else ""
            stages.append(
                f"stage {stage_id} ({_short(info.name)}) "
                f"{info.numCompletedTasks}/{info.numTasks} tasks{failed}"
            )
        parts = [
            f"{self.label}: {self.elapsed():.1f} s",
            "; ".join(stages) if stages else "no active stage (0 tasks running)",
        ]
        records = self.records_read()
        if records is not None:
            parts.append(f"{records:,} input records read")
        return "; ".join(parts)

    def records_read(self) -> int | None:
        """Input records of the finished tasks of the block's jobs; None when not readable."""
        if not self._records_ok or self._tag is None:
            return None
        try:
            with self._lock:
                return self._records_read(self._tag)
        except Exception:
            log.debug("%s: input records not readable", self.label, exc_info=True)
            self._records_ok = False
            return None

    def _records_read(self, tag: str) -> int:
        sc = self._spark.sparkContext
        jsc = sc._jsc.sc()
        tracker = sc.statusTracker()
        stage_ids: set[int] = set()
        for job_id in jsc.statusTracker().getJobIdsForTag(tag):
            info = tracker.getJobInfo(int(job_id))
            if info is not None:
                stage_ids.update(int(s) for s in info.stageIds)
        store = jsc.statusStore()
        total = 0
        for stage_id in sorted(stage_ids):
            if stage_id in self._final_records:
                total += self._final_records[stage_id]
                continue
            try:
                stage = store.lastStageAttempt(stage_id)
            except Exception:  # not submitted yet, or no longer retained
                continue
            records = int(stage.inputRecords())
            if str(stage.status()) in _FINAL_STAGE_STATES:
                self._final_records[stage_id] = records
            total += records
        return total


def _short(name: object, width: int = 60) -> str:
    text = " ".join(str(name).split())
    return text if len(text) <= width else text[: width - 1] + "…"


@contextmanager
def log_progress(
    spark: Any, label: str, every_seconds: float = 30.0, records: bool = True
) -> Iterator[ProgressLogger]:
    """Log the progress of the Spark work inside the block every ``every_seconds`` seconds.

    ``records=False`` leaves the input records out: the arrow reader reads its rows in
    Python, where Spark does not count them (its stages read one record per task).

    Yields the :class:`ProgressLogger`. When the block ends, also by an exception
    (which then propagates unchanged), the thread is stopped and joined and one
    line gives the total time (``<label>: done in 12.3 s; N input records read``,
    or ``failed after``). Logging problems never raise; they are logged at debug level.
    """
    progress = ProgressLogger(spark, label, every_seconds, records=records)
    progress.start()
    failed = False
    try:
        yield progress
    except BaseException:
        failed = True
        raise
    finally:
        try:
            progress.stop(failed=failed)
        except Exception:  # stop() guards itself; this is the last line of defence
            log.debug("%s: progress logging did not stop cleanly", label, exc_info=True)
