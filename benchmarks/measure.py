"""How the benchmarks measure: peak memory, one run in a fresh process, and the table of figures.

Peak memory is read from the kernel: ``peak_mib`` is this process's VmHWM (its peak RSS), not
getrusage's ``ru_maxrss``, which a process started from a big parent reports as at least the
parent's size (Linux keeps the forked image's maximum across exec); ``children_peak_mib`` is the
largest waited-for child's (worker pools, DataLoader workers, mongod).

A run whose peak must be its own runs in a fresh process: the benchmark calls itself with
``--child ...`` through ``run_child``, and the child prints its figures as one line,
``RESULT_TAG`` then JSON (``print_result``), among anything else it prints; ``result_of`` reads
that line back.

Usage (benchmarks/ on sys.path, as the other benchmarks put it):

    from measure import peak_mib, print_result, run_child, table
    result = run_child([sys.executable, __file__, "--child", name], timeout=600)
    print(table(rows, [("N", "n", "{:,}"), ("seconds", "seconds", "{:.2f}")]))
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

RESULT_TAG = "RESULT "  # marks the child's one line of JSON among anything else it prints


def peak_mib() -> float:
    """This process's peak RSS in MiB: VmHWM, which (unlike ``ru_maxrss``) does not start from
    the parent's high-water mark after fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB


def children_peak_mib() -> float:
    """The peak RSS in MiB of this process's largest waited-for child (getrusage's
    RUSAGE_CHILDREN); a child forked from this process counts from this process's size then."""
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)  # KiB


def peak_memory() -> dict:
    """``{"peak_mib": ..., "child_peak_mib": ...}``: this process's peak and its largest child's."""
    return {"peak_mib": peak_mib(), "child_peak_mib": children_peak_mib()}


def print_result(result: dict) -> None:
    """The child's side: its figures as the one ``RESULT_TAG`` line its parent reads back."""
    print(RESULT_TAG + json.dumps(result), flush=True)


def result_of(stdout: str) -> dict | None:
    """The figures a child printed with ``print_result`` (its last such line), or None."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_TAG)]
    return json.loads(lines[-1][len(RESULT_TAG):]) if lines else None


def run_child(cmd: list[str], timeout: float | None) -> dict:
    """Run ``cmd`` in a fresh process and session, and return the figures it printed.

    Its own session: at ``timeout`` seconds it is killed with its whole group (a process pool,
    its threads' helpers). Returns the child's result, else ``{"status": "timed out after N s",
    "seconds": N}`` or ``{"status": "failed (exit N): [its last stderr line]"}``.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    start = time.perf_counter()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"status": f"timed out after {timeout:.0f} s", "seconds": round(time.perf_counter() - start)}
    found = result_of(out)
    if found is not None:
        return found
    return {"status": f"failed (exit {proc.returncode}): {err.strip().splitlines()[-1:]}"}


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """The rows as right-aligned text columns under a heading and a rule.

    Args:
        rows: one dict of figures a row.
        columns: ``(heading, key, format)`` a column, e.g. ``("peak MiB", "peak_mib", "{:.0f}")``;
            a missing or None value shows as "-".
    """
    cells = [[heading for heading, _, _ in columns]]
    for row in rows:
        cells.append([fmt.format(row[key]) if row.get(key) is not None else "-" for _, key, fmt in columns])
    widths = [max(len(r[c]) for r in cells) for c in range(len(columns))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
