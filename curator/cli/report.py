"""``curator report``: performance by version, class and confidence, and usage, as HTML or tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from curator.cli.common import DbOption, JsonOption, console, open_lib, parse_since, print_json, table


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    out: Annotated[Path, typer.Option(help="Where to write the HTML page (missing folders are created).")] = Path("report.html"),
    since: Annotated[Optional[str], typer.Option(help="Only traffic and evaluations from this date (YYYY-MM-DD) on.")] = None,
    terminal: Annotated[bool, typer.Option("--terminal", help="Print the key numbers as tables instead of writing HTML.")] = False,
    db: DbOption = None,
    json_: JsonOption = False,
) -> None:
    """A self-contained HTML report a manager can read: a summary, then interactive charts of
    accuracy by model version and over time (test, benchmark, reviewed production traffic),
    per-class accuracy and its change since the previous version, a reliability diagram, usage
    and training curves, each explained in a line, with its data as CSV. Helper runs (suspects'
    folds) are left out.

    Example: curator report --out report.html --since 2026-11-01
    """
    from curator import report as report_lib

    data = report_lib.gather(open_lib(db), since=parse_since(since))
    if json_:
        return print_json(data)
    if terminal:
        return _print(data)
    from curator import report_page

    report_page.write(data, out)
    console.print(f"Wrote {out} ({out.stat().st_size // 1024} KiB): open it in a browser.")


def _print(data: dict) -> None:
    from curator.report import key_numbers

    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    t = table("Key", "Value", title="Key numbers")
    for k, v in key_numbers(data):
        t.add_row(k, v)
    console.print(t)
    t = table("Run", "Parent", "Test acc", "Benchmark acc", "Production acc", "Reviewed", "Requests", title="By model version")
    for v in data["versions"]:
        t.add_row(v["run"] + (" (production)" if v["production"] else ""), v["parent"] or "", fmt(v["test_accuracy"]),
                  fmt(v["benchmark_accuracy"]), fmt(v["production_accuracy"]), str(v["production_reviewed"]), str(v["requests"]))
    console.print(t)
    pc = data["per_class"]
    if pc["rows"]:
        t = table("Class", "Accuracy", "Previous", "Change", "Support",
                  title=f"Per class: {pc['run']} vs {pc['previous'] or 'no previous version'}")
        for r in sorted(pc["rows"], key=lambda r: (r["change"] is None, r["change"] or 0)):
            t.add_row(r["class"], fmt(r["accuracy"]), fmt(r["previous"]),
                      "" if r["change"] is None else f"{r['change']:+.3f}", str(r["support"]))
        console.print(t)
    t = table("Confidence", "Test n", "Test acc", "Production n", "Production acc", title="Accuracy by confidence")
    rel = data["reliability"]
    for i in range(len(rel["test"] or rel["production"])):
        a = rel["test"][i] if rel["test"] else {}
        b = rel["production"][i] if rel["production"] else {}
        lo, hi = (a or b)["low"], (a or b)["high"]
        t.add_row(f"{lo:.1f}-{hi:.1f}", str(a.get("n", "")), fmt(a.get("accuracy")), str(b.get("n", "")), fmt(b.get("accuracy")))
    console.print(t)
    t = table("Date", "Requests", "Answered", "Refused", "Not sure", "p50 ms", title="Usage")
    for r in data["usage"]:
        t.add_row(r["date"], str(r["requests"]), str(r["answered"]), str(r["refused"]),
                  "-" if r["share_not_sure"] is None else f"{r['share_not_sure']:.1%}", fmt(r["p50_latency_ms"]))
    console.print(t)
