"""How long the ``curator`` command takes to start: ``--help``, and ``stats`` on a small library.

Each command runs N times (default 10) in a fresh process, as a user types it; the script prints
the median, the fastest and the slowest wall time, the machine's load average before and after
(figures taken under load are not comparable: note the load beside any figure you keep), and
which heavy modules ``curator --help`` imports, with their cumulative import time from
``python -X importtime`` (roughly independent of load). The small library is one class folder
of ``sample_data/library`` imported into a scratch folder.

Target: under 0.5 s each on the development machine.

Usage:
    .venv/bin/python benchmarks/startup.py
    .venv/bin/python benchmarks/startup.py --runs 20 --json benchmarks/out/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CURATOR = [sys.executable, "-m", "curator"]
HEAVY = ("typer", "rich.console", "sqlalchemy", "sqlalchemy.orm", "curator.library.models", "alembic", "numpy")


def wall(cmd: list[str], runs: int) -> list[float]:
    """Seconds each of ``runs`` fresh runs of ``cmd`` took (its output discarded)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def import_times() -> dict[str, float]:
    """Cumulative import time (ms) of each heavy top-level package ``import curator.cli`` loads."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import curator.cli"],
                         capture_output=True, text=True, check=True).stderr
    found = {"total": 0.0}
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        name = name.strip()
        if name in HEAVY:
            found[name] = max(found.get(name, 0.0), int(cumulative) / 1000)
        if name == "curator.cli":
            found["total"] = int(cumulative) / 1000
    return found


def small_library(folder: Path) -> str:
    db = str(folder / "curator.sqlite")
    subprocess.run([*CURATOR, "init", "--db", db], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*CURATOR, "import", str(ROOT / "sample_data" / "library" / "animal-bird"),
                    "--labels-from-folders", "--db", db], check=True, stdout=subprocess.DEVNULL)
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", help="Also write the figures to this file.")
    args = parser.parse_args()
    os.chdir(ROOT)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        db = small_library(Path(tmp))
        commands = {"curator --help": [*CURATOR, "--help"], "curator stats --db SMALL": [*CURATOR, "stats", "--db", db]}
        results = {}
        for name, cmd in commands.items():
            times = wall(cmd, args.runs)
            results[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                             "max_s": round(max(times), 3), "runs": args.runs}
    imports = import_times()
    report = {"load_before": load_before, "load_after": os.getloadavg(), "cpus": os.cpu_count(),
              "commands": results, "import_ms": imports}
    print(f"load average {load_before[0]:.2f} before, {report['load_after'][0]:.2f} after; {os.cpu_count()} CPUs")
    print(f"{'command':<28} {'median':>8} {'min':>8} {'max':>8}")
    for name, r in results.items():
        verdict = "ok" if r["median_s"] < 0.5 else "over the 0.5 s target"
        print(f"{name:<28} {r['median_s']:>7.3f}s {r['min_s']:>7.3f}s {r['max_s']:>7.3f}s  {verdict}")
    print("import curator.cli (python -X importtime, cumulative ms): "
          + ", ".join(f"{k} {v:.0f}" for k, v in imports.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
