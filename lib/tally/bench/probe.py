"""Wall time, CPU time and peak memory of the driver: this Python process and Spark's JVM.

Linux only (reads ``/proc``). What is measured:

* **CPU seconds**: this Python process's own (``time.process_time``) and that of
  its reaped children (``os.times``), plus, for the Spark JVM and every process
  below it or this one (e.g. Python workers) alive at the end, ``utime + stime +
  cutime + cstime`` (``/proc/<pid>/stat``), each last reading minus its first.
  A process that exits during the measurement (one may live less than any polling
  interval) is thereby counted whole, in its parent's ``cutime``/``cstime`` once
  reaped; what it had spent before the measurement (its first reading) is taken
  off. Except where its parent ignores ``SIGCHLD``, as Spark's Python daemon does:
  the kernel then reaps the child itself and adds its time to no one, so the child
  counts for nothing, neither its time before the start nor after. (Spark kills a
  Python worker when it has been idle for a while, so what such a worker spent
  after the start is that of an idle process; taking its first reading off would
  have made an idle interval's CPU negative.) Under ``spark-submit`` the JVM is
  this process's parent and is found that way.
* **Machine CPU seconds** (:attr:`Sample.machine_cpu_s`): every CPU's busy time
  from ``/proc/stat`` (all but ``idle``, ``iowait`` and guest time), which also
  counts whatever else runs on the machine.
* **Peak RSS**: ``VmHWM`` (``/proc/<pid>/status``) of the Python process and of
  the JVM, each reset to its current RSS before a measurement by writing ``5``
  to ``/proc/<pid>/clear_refs`` (Linux ≥ 4.0). Where the reset is refused the
  peak is the process's lifetime peak, and :attr:`Sample.peak_reset` says so.
  The two peaks are reported apart and summed; the sum bounds the combined
  peak from above (both need not peak at the same moment).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name, or None if gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def own_cpu_seconds(pid: int) -> float | None:
    """``utime + stime`` of ``pid`` itself (None if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float | None:
    """``utime + stime + cutime + cstime`` of ``pid``: its own CPU and that of its
    reaped descendants (None if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (``/proc/stat``, all CPUs):
    user, nice, system, irq, softirq and steal (guest time is inside user)."""
    fields = (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _reaped_children_cpu() -> float:
    times = os.times()
    return times.children_user + times.children_system


#: bit of ``SIGCHLD`` (signal 17 on Linux) in ``SigIgn`` of ``/proc/<pid>/status``
SIGCHLD_BIT = 1 << (17 - 1)


def ignores_sigchld(pid: int) -> bool:
    """Whether ``pid`` ignores ``SIGCHLD``: its exited children are reaped by the kernel
    and their CPU is added to no one's ``cutime``/``cstime``."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & SIGCHLD_BIT)
    except OSError:
        pass
    return False


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def command_name(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def descendants(roots: set[int]) -> set[int]:
    """``roots`` and every live process below any of them."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``), 0 if missing."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak(pid: int) -> bool:
    """Reset ``VmHWM`` of ``pid`` to its current RSS; False where the kernel refuses."""
    try:
        (PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def find_jvm(spark: object | None = None) -> int | None:
    """Pid of the Spark driver JVM: the py4j gateway's process, a ``java`` child, or
    (under ``spark-submit``) the ``java`` parent of this process."""
    if spark is not None:
        proc = getattr(
            getattr(getattr(spark, "sparkContext", None), "_gateway", None), "proc", None
        )
        pid = getattr(proc, "pid", None)
        if pid is not None and command_name(pid) == "java":
            return int(pid)
    me = os.getpid()
    for pid in sorted(descendants({me}) - {me}):
        if command_name(pid) == "java" and parent_of(pid) == me:
            return pid
    parent = os.getppid()
    return parent if command_name(parent) == "java" else None


@dataclass(frozen=True)
class Sample:
    """One measured run."""

    wall_s: float
    cpu_s: float
    peak_rss_python_mib: float
    peak_rss_jvm_mib: float | None
    peak_reset: bool
    machine_cpu_s: float | None = None

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_python_mib + (self.peak_rss_jvm_mib or 0.0)


class Probe:
    """Measures one block of work: ``with probe.measure() as m: ...; m.sample``.

    Before each measurement, :meth:`settle` collects garbage in Python and (through
    ``jvm_gc``, e.g. ``System.gc()`` over py4j) in the JVM, untimed, so that memory
    left by an earlier method is freed first: G1 gives heap back to the OS after a
    full collection, so a method's JVM peak is less inflated by its predecessors'.
    """

    def __init__(
        self, jvm_pid: int | None = None, jvm_gc: Callable[[], None] | None = None
    ) -> None:
        self.python_pid = os.getpid()
        self.jvm_pid = jvm_pid
        self.jvm_gc = jvm_gc

    def settle(self) -> None:
        gc.collect()
        if self.jvm_gc is not None:
            self.jvm_gc()

    @property
    def roots(self) -> set[int]:
        return {self.python_pid} | ({self.jvm_pid} if self.jvm_pid else set())

    def others(self) -> dict[int, float]:
        """:func:`tree_cpu_seconds` of the JVM and every descendant, by pid (not this
        process)."""
        found = {}
        for pid in descendants(self.roots) - {self.python_pid}:
            seconds = tree_cpu_seconds(pid)
            if seconds is not None:
                found[pid] = seconds
        return found

    def measure(self) -> Measurement:
        return Measurement(self)


class Measurement:
    """Context manager behind :meth:`Probe.measure`; ``sample`` is set on exit."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.sample: Sample | None = None

    def __enter__(self) -> Measurement:
        self.probe.settle()
        self.reset = all([reset_peak(pid) for pid in self.probe.roots])
        self.first = self.probe.others()
        # children that, on exit, are reaped by the kernel and counted nowhere
        self.uncounted_on_exit = {
            pid for pid in self.first if ignores_sigchld(parent_of(pid) or 0)
        }
        self.machine = machine_cpu_seconds()
        self.own = time.process_time() + _reaped_children_cpu()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.wall
        own = time.process_time() + _reaped_children_cpu() - self.own
        machine = machine_cpu_seconds() - self.machine
        last = self.probe.others()
        # the alive: their growth, reaped descendants included; the gone: counted whole
        # in a parent's cutime/cstime, less what they had spent before the start (those
        # whose parent ignored SIGCHLD are in no one's: nothing to take off)
        others = sum(seconds - self.first.get(pid, 0.0) for pid, seconds in last.items())
        others -= sum(
            seconds
            for pid, seconds in self.first.items()
            if pid not in last and pid not in self.uncounted_on_exit
        )
        cpu = own + others
        jvm = self.probe.jvm_pid
        self.sample = Sample(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss_python_mib=status_kib(self.probe.python_pid, "VmHWM") / 1024,
            peak_rss_jvm_mib=status_kib(jvm, "VmHWM") / 1024 if jvm else None,
            peak_reset=self.reset,
            machine_cpu_s=machine,
        )
