"""How long the ``curator`` command takes to start: ``--help``, ``stats`` on a small library,
and ``curator COMMAND --help`` for every command.

Each command runs N times (default 10) in a fresh process, as a user types it; the script prints
the median, the fastest and the slowest wall time, the median CPU time (user + system: less
swayed than wall time by what else the machine runs), the machine's load average before and
after (wall times taken under load are not comparable: note the load beside any figure you
keep), and which heavy modules ``curator --help`` and ``curator stats`` import, with their
cumulative import time from ``python -X importtime``. Every command's ``--help`` runs
``--help-runs`` times (default 3); the slowest command's median is reported. The small library
is one class folder of ``sample_data/library`` imported into a scratch folder.

Target: under 0.5 s each on the development machine.

Usage:
    .venv/bin/python benchmarks/startup.py
    .venv/bin/python benchmarks/startup.py --runs 20 --json benchmarks/out/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CURATOR = [sys.executable, "-m", "curator"]
CURATOR_IMPORTTIME = [sys.executable, "-X", "importtime", "-m", "curator"]
HEAVY = ("typer", "rich.console", "pydantic", "sqlalchemy", "sqlalchemy.orm", "sqlalchemy.dialects.postgresql",
         "curator.library.models", "alembic", "numpy")


def timed(cmd: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``runs`` fresh runs of ``cmd`` (its output discarded)."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return walls, cpus


def figures(walls: list[float], cpus: list[float]) -> dict:
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3), "cpu_median_s": round(statistics.median(cpus), 3), "runs": len(walls)}


def import_times(args: list[str]) -> dict[str, float]:
    """Cumulative import time (ms) of each heavy module ``curator ARGS`` loads, and of all its imports."""
    out = subprocess.run([*CURATOR_IMPORTTIME, *args], capture_output=True, text=True).stderr
    found = {"total": 0.0}
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not name.startswith("  "):  # a top-level import: its cumulative time holds its children's
            found["total"] += int(cumulative) / 1000
        name = name.strip()
        if name in HEAVY:
            found[name] = max(found.get(name, 0.0), int(cumulative) / 1000)
    return found


def every_command() -> list[list[str]]:
    """``[COMMAND..., "--help"]`` for every command and sub-command."""
    from typer.main import get_command

    from curator.cli import app

    found, stack = [], [((), get_command(app))]
    while stack:
        path, command = stack.pop()
        if path:
            found.append([*path, "--help"])
        stack += [((*path, name), sub) for name, sub in getattr(command, "commands", {}).items()]
    return sorted(found)


def small_library(folder: Path) -> str:
    db = str(folder / "curator.sqlite")
    subprocess.run([*CURATOR, "init", "--db", db], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*CURATOR, "import", str(ROOT / "sample_data" / "library" / "animal-bird"),
                    "--labels-from-folders", "--db", db], check=True, stdout=subprocess.DEVNULL)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--help-runs", type=int, default=3, help="Runs of each command's --help (0: none).")
    parser.add_argument("--json", help="Also write the figures to this file.")
    args = parser.parse_args()
    os.chdir(ROOT)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        db = small_library(Path(tmp))
        commands = {"curator --help": ["--help"], "curator stats --db SMALL": ["stats", "--db", db]}
        results = {name: figures(*timed([*CURATOR, *cmd], args.runs)) for name, cmd in commands.items()}
        helps = {" ".join(cmd): figures(*timed([*CURATOR, *cmd], args.help_runs))
                 for cmd in (every_command() if args.help_runs else [])}
        imports = {name: import_times(cmd) for name, cmd in commands.items()}
    if helps:
        slowest = max(helps, key=lambda name: helps[name]["median_s"])
        results[f"slowest: curator {slowest}"] = helps[slowest]
    report = {"load_before": load_before, "load_after": os.getloadavg(), "cpus": os.cpu_count(),
              "commands": results, "every_help": helps, "import_ms": imports}
    print(f"load average {load_before[0]:.2f} before, {report['load_after'][0]:.2f} after; {os.cpu_count()} CPUs")
    print(f"{'command':<40} {'median':>8} {'min':>8} {'max':>8} {'cpu':>8}")
    for name, r in results.items():
        verdict = "ok" if r["median_s"] < 0.5 else "over the 0.5 s target"
        print(f"{name:<40} {r['median_s']:>7.3f}s {r['min_s']:>7.3f}s {r['max_s']:>7.3f}s {r['cpu_median_s']:>7.3f}s  {verdict}")
    if helps:
        print(f"every `curator COMMAND --help`: {len(helps)} commands x {args.help_runs} runs,"
              f" {sum(r['median_s'] < 0.5 for r in helps.values())} with a median under 0.5 s")
    for name, found in imports.items():
        print(f"{name} (python -X importtime, cumulative ms): " + ", ".join(f"{k} {v:.0f}" for k, v in found.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
