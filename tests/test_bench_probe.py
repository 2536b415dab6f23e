"""The benchmark's CPU accounting (``tally.bench.probe``): a process that is born and exits
during a measurement counts whole, once, however short its life.

A stand-in for the Spark JVM (a long-lived child) forks workers that burn CPU and exit,
as Spark's Python daemon forks and reaps its workers. The workers report their own CPU
(``time.process_time``), the reference the probe's figure is held to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tally.bench.probe import CLOCK_TICKS, machine_cpu_seconds

#: Forks one worker per line read: the worker burns the CPU seconds the line gives,
#: prints what it spent and exits; the daemon reaps it before it answers.
DAEMON = textwrap.dedent(
    """
    import os, sys, time
    for line in sys.stdin:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            end = time.process_time() + float(line)
            while time.process_time() < end:
                pass
            os.write(write, repr(time.process_time()).encode())
            os._exit(0)
        os.close(write)
        spent = os.read(read, 100).decode()
        os.waitpid(pid, 0)
        print(spent, flush=True)
    """
)


#: Run in a fresh interpreter, so that no other child of the test process (a Spark JVM of
#: another test) is in the measured tree: a stand-in daemon as the JVM, one measurement
#: of ``BURNS``; prints the probe's CPU, the workers' own and the machine's.
MEASURE = textwrap.dedent(
    """
    import json, subprocess, sys
    from tally.bench.probe import Probe
    daemon = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    def burn(seconds):
        daemon.stdin.write(f"{seconds}\\n")
        daemon.stdin.flush()
        return float(daemon.stdout.readline())
    probe = Probe(jvm_pid=daemon.pid)
    burn(0.05)  # a worker before the measurement: not counted
    with probe.measure() as m:
        spent = sum(burn(s) for s in json.loads(sys.argv[2]))
    daemon.stdin.close()
    daemon.wait()
    print(json.dumps([m.sample.cpu_s, spent, m.sample.machine_cpu_s]))
    """
)


@pytest.mark.parametrize("burns", [(0.05,) * 6, (0.6,)])
def test_workers_that_exit_during_a_measurement_count_once(burns):
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, DAEMON, json.dumps(burns)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    cpu, spent, machine = json.loads(done.stdout)
    tick = 1 / CLOCK_TICKS
    # every worker whole, and not counted twice: /proc gives a worker's user and system
    # time each in whole clock ticks, so up to two ticks of each can be lost; the rest is
    # the daemon's and the measuring process's own CPU over a few milliseconds of work
    assert cpu >= spent - 2 * tick * len(burns)
    assert cpu <= spent + 0.1 + 2 * tick * len(burns)
    assert machine >= spent - 0.05


#: Spark's Python daemon ignores SIGCHLD (the kernel reaps its workers and adds their CPU to
#: no one) and kills a worker once it has been idle a while. This stand-in forks one worker
#: that burns the CPU seconds of its first line and then idles; the next line kills it.
IGNORING_DAEMON = textwrap.dedent(
    """
    import os, signal, sys, time
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    seconds = float(sys.stdin.readline())
    pid = os.fork()
    if pid == 0:
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
        time.sleep(600)
        os._exit(0)
    time.sleep(seconds + 0.5)  # the worker has burnt its seconds: it idles
    print("idle", flush=True)
    sys.stdin.readline()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)  # reaped by the kernel
    print("killed", flush=True)
    sys.stdin.readline()
    """
)

#: The idle worker's CPU before the measurement, then a measurement in which it is killed.
MEASURE_KILLED_IDLE = textwrap.dedent(
    """
    import json, subprocess, sys
    from tally.bench.probe import Probe
    daemon = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )
    daemon.stdin.write("0.5\\n")
    daemon.stdin.flush()
    assert daemon.stdout.readline() == "idle\\n"
    probe = Probe(jvm_pid=daemon.pid)
    with probe.measure() as m:
        daemon.stdin.write("kill\\n")
        daemon.stdin.flush()
        assert daemon.stdout.readline() == "killed\\n"
    daemon.stdin.close()
    daemon.wait()
    print(json.dumps(m.sample.cpu_s))
    """
)


def test_an_idle_worker_killed_under_a_daemon_ignoring_sigchld_costs_nothing():
    """Its 0.5 CPU-s before the start are not taken off the interval (which would make an
    idle interval's CPU -0.5) and nothing is added for it."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_KILLED_IDLE, IGNORING_DAEMON],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    cpu = json.loads(done.stdout)
    assert 0 <= cpu <= 0.1


def test_machine_cpu_grows_with_work():
    before = machine_cpu_seconds()
    total = 0
    for i in range(3_000_000):
        total += i
    assert machine_cpu_seconds() > before
