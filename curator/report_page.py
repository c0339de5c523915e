"""The report as a page a manager reads: ``curator.report``'s data as one self-contained HTML file.

A summary at the top, then one column of interactive Plotly charts at full width, each with a
line saying what it shows and how to read it, and its data as a CSV download. A chart with no
data says which command would fill it. plotly.js is embedded once, in the page's head, so the
file works offline and asks the network for nothing (about 4.7 MB; Plotly ships no smaller
bundle that has bar and scatter charts). Plotly is imported only when a page is rendered.
"""

from __future__ import annotations

import base64
import html as html_lib
import math
import re
from pathlib import Path

from curator.errors import InvalidInput
from curator.report import summary, tables, to_csv

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
# One colour per source of accuracy, the same on every chart.
TEST, BENCHMARK, PRODUCTION = "#2b6cb0", "#805ad5", "#dd6b20"
ANSWERED, REFUSED, NOT_SURE = "#2b6cb0", "#c53030", "#1a202c"
CURVE_COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5")
SOURCES = (  # key in a version row, its image count, legend name, colour, key in over_time rows
    ("test_accuracy", "test_n", "test images", TEST, "test"),
    ("benchmark_accuracy", "benchmark_n", "benchmark images", BENCHMARK, "benchmark"),
    ("production_accuracy", "production_reviewed", "reviewed production answers", PRODUCTION, "production"),
)
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
EVALUATE = "No evaluated run yet: run `curator evaluate {run} --split test`."


def write(data: dict, out: str | Path) -> Path:
    """Render :func:`html` into ``out``, creating its missing folders.

    Raises:
        InvalidInput: ``out`` is a folder, lies under a file, or cannot be written.
    """
    out = Path(out)
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder: name the page's file, e.g. --out {out / 'report.html'}")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InvalidInput(f"cannot write {out}: {blocker} is a file, not a folder; choose another --out")
    page = html(data)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except PermissionError:
        raise InvalidInput(f"cannot write {out}: permission denied; choose a folder you can write to "
                           f"with --out") from None
    except OSError as e:
        raise InvalidInput(f"cannot write {out}: {e.strerror or e}; choose another --out") from None
    return out


def html(data: dict) -> str:
    """The page: a summary, six charts (or what would fill them), each chart's data as CSV."""
    from plotly.offline import get_plotlyjs

    esc = html_lib.escape
    since = f", traffic and evaluations since {esc(data['since'])}" if data["since"] else ""
    run = _newest_run(data)
    data_tables = tables(data)
    sections = [_section(name, title, chart(data), _text(how), _text(empty.format(run=run)), data_tables[name])
                for name, title, chart, how, empty in CHARTS]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>curator report</title>"
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body><main>"
            f"<h1>curator report</h1><p class='meta'>{esc(data['library'])}: generated "
            f"{esc(data['generated_at'].replace('T', ' '))}{since}</p>{_summary(data)}"
            + "".join(sections) + "</main></body></html>")


def _text(text: str) -> str:
    """Escaped HTML, with `backticked` commands as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html_lib.escape(text))


def _newest_run(data: dict) -> str:
    """The newest training run's name for a suggested command, else the placeholder RUN."""
    return data["versions"][-1]["run"] if data["versions"] else "RUN"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def _summary(data: dict) -> str:
    """The headline tiles: the newest evaluated run against the version before it, production, usage."""
    s = summary(data)
    versions = {v["run"]: v for v in data["versions"]}
    newest = versions.get(s["newest"])
    if s["change"] is not None:
        relation = "its parent" if newest["parent"] == s["previous"] else "the run evaluated before it"
        direction = "up" if s["change"] > 0 else "down" if s["change"] < 0 else "level"
        change = (f"{direction} {abs(s['change']) * 100:.1f} points on {s['previous']}, {relation} "
                  f"({_pct(s['previous_accuracy'])})")
    else:
        change = "no earlier version to compare with"
    answered = (f"{s['answered']} answered, {s['refused']} refused; {s['not_sure'] / s['answered']:.0%} "
                f"below the class threshold" if s["answered"] else "No served requests yet: see `curator serve`.")
    tiles = [
        ("Newest evaluated run", s["newest"] or "none yet",
         f"evaluated on {newest['test_n']} test images" if newest else EVALUATE.format(run=_newest_run(data))),
        ("Its test accuracy", _pct(s["test_accuracy"]), change if newest else ""),
        ("In production", s["production"] or "none yet",
         "served by `curator serve`" if s["production"] else "choose one: `curator runs promote RUN`"),
        ("Served requests", str(s["requests"]), answered),
        ("Reviewed production accuracy", _pct(s["reviewed_accuracy"]),
         f"of {s['reviewed']} reviewed answers" if s["reviewed"] else "no answer reviewed yet: `curator feedback`"),
    ]
    return ("<div class='summary'>" + "".join(
        f"<div class='tile'><div class='label'>{_text(label)}</div><div class='value'>{_text(value)}</div>"
        f"<div class='sub'>{_text(sub)}</div></div>" for label, value, sub in tiles) + "</div>")


def _section(name: str, title: str, chart, how: str, empty: str, rows: list[dict]) -> str:
    """One chart's section: its title, the chart or what would fill it, how to read it, notes, CSV."""
    import plotly.io as pio

    fig, notes = chart
    shown = (pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"chart-{name}", config=CONFIG)
             if fig is not None else f"<p class='empty'>{empty}</p>")
    csv_text = base64.b64encode(to_csv(rows).encode()).decode()
    link = (f"<a download='{name}.csv' href='data:text/csv;base64,{csv_text}'>Download the data "
            f"(CSV, {len(rows)} rows)</a>" if rows else "")
    notes_html = "".join(f"<p class='note'>{_text(n)}</p>" for n in notes)
    return (f"<section id='{name}'><h2>{html_lib.escape(title)}</h2>{shown}<p class='how'>{how}</p>"
            f"{notes_html}<p class='csv'>{link}</p></section>")


def _figure(*, height: int = 440, secondary: bool = False):
    """An empty figure in the page's style: white, large type, the legend above the plot."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]]) if secondary else go.Figure()
    fig.update_layout(template="plotly_white", height=height, font={"family": FONT, "size": 15},
                      margin={"l": 80, "r": 40, "t": 40, "b": 60}, hoverlabel={"font_size": 14},
                      legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "traceorder": "normal"})
    return fig


def _versions(data: dict):
    rows = [v for v in data["versions"] if any(v[key] is not None for key, *_ in SOURCES)]
    waiting = [v["run"] for v in data["versions"] if v not in rows]
    notes = [f"Not evaluated yet: {', '.join(waiting)} (`curator evaluate RUN --split test`)."] if waiting and rows else []
    if not rows:
        return None, notes
    fig = _figure()
    x = [v["run"] + (" ★ production" if v["production"] else "") for v in rows]
    for key, n_key, name, colour, _ in SOURCES:
        if any(v[key] is not None for v in rows):
            fig.add_bar(x=x, y=[v[key] for v in rows], name=name, marker_color=colour,
                        text=[_pct(v[key], 0) if v[key] is not None else "" for v in rows], textposition="outside",
                        customdata=[v[n_key] or 0 for v in rows],
                        hovertemplate=f"%{{x}}<br>{name}: %{{y:.1%}} right of %{{customdata}}<extra></extra>")
    fig.update_layout(barmode="group", xaxis={"type": "category"},
                      yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.1]})
    return fig, notes


def _over_time(data: dict):
    rows = data["over_time"]
    if not rows:
        return None, []
    fig = _figure()
    for *_, name, colour, source in SOURCES:
        mine = [r for r in rows if r["source"] == source]
        if mine:
            fig.add_scatter(x=[r["date"] for r in mine], y=[r["accuracy"] for r in mine], name=name,
                            mode="lines+markers", marker={"size": 10, "color": colour}, line={"color": colour},
                            customdata=[[r["run"], r["n"]] for r in mine],
                            hovertemplate=f"%{{x}} {name}<br>%{{customdata[0]}}: %{{y:.1%}} right of "
                                          f"%{{customdata[1]}}<extra></extra>")
    fig.update_layout(xaxis={"type": "category", "categoryorder": "category ascending", "title": "day"},
                      yaxis={"title": "accuracy", "tickformat": ".0%", "range": [0, 1.05]})
    return fig, []


def _per_class(data: dict):
    pc = data["per_class"]
    scored = sorted((r for r in pc["rows"] if r["accuracy"] is not None), key=lambda r: (r["accuracy"], r["class"]))
    untested = [r["class"] for r in pc["rows"] if r["accuracy"] is None]
    notes = [f"No test images, so not scored: {', '.join(untested)}."] if untested else []
    if not scored:
        return None, notes
    fig = _figure(height=max(320, 34 * len(scored) + 130))
    change = lambda r: "" if r["change"] is None else f" ({r['change'] * 100:+.0f} pts)"  # noqa: E731
    fig.add_bar(y=[r["class"] for r in scored], x=[r["accuracy"] for r in scored], orientation="h",
                name=f"{pc['run']} (newest evaluated)", marker_color=TEST, textposition="outside",
                text=[_pct(r["accuracy"], 0) + change(r) for r in scored],
                hovertext=[f"{r['class']}: {_pct(r['accuracy'])} right of {r['support']} test images"
                           + (f"<br>previous {_pct(r['previous'])}, change {r['change'] * 100:+.1f} points"
                              if r["change"] is not None else "") for r in scored],
                hovertemplate="%{hovertext}<extra></extra>")
    before = [r for r in scored if r["previous"] is not None]
    if before:
        fig.add_scatter(y=[r["class"] for r in before], x=[r["previous"] for r in before], mode="markers",
                        name=f"{pc['previous']} (previous version)",
                        marker={"symbol": "line-ns-open", "size": 22, "color": NOT_SURE, "line": {"width": 3}},
                        hovertemplate="%{y}: previous version %{x:.1%}<extra></extra>")
    fig.update_layout(xaxis={"title": "accuracy on the class's test images (recall)", "tickformat": ".0%",
                             "range": [0, 1.18]},
                      yaxis={"autorange": "reversed", "type": "category", "automargin": True, "ticksuffix": "  "},
                      bargap=0.3)
    return fig, notes


def _reliability(data: dict):
    rel = data["reliability"]
    found = {src: [b for b in rel[src] if b["n"]] for src in ("test", "production")}
    if not any(found.values()):
        return None, []
    fig = _figure(height=500)
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="honest confidence",
                    line={"dash": "dash", "color": "#a0aec0"}, hoverinfo="skip")
    for (src, points), name, colour in zip(found.items(), ("test images", "reviewed production answers"),
                                           (TEST, PRODUCTION)):
        if points:
            most = max(b["n"] for b in points)
            fig.add_scatter(x=[b["confidence"] for b in points], y=[b["accuracy"] for b in points],
                            name=f"{name} of {rel['run']}" if src == "test" else name, mode="lines+markers",
                            line={"color": colour}, marker={"color": colour,
                                                            "size": [8 + 14 * math.sqrt(b["n"] / most) for b in points]},
                            customdata=[[b["low"], b["high"], b["n"]] for b in points],
                            hovertemplate="confidence %{customdata[0]:.0%}-%{customdata[1]:.0%}: right "
                                          "%{y:.0%} of %{customdata[2]}<extra></extra>")
    fig.update_layout(xaxis={"title": "confidence the model gave", "tickformat": ".0%", "range": [0, 1.02]},
                      yaxis={"title": "share it got right", "tickformat": ".0%", "range": [0, 1.05]})
    return fig, []


def _usage(data: dict):
    rows = data["usage"]
    if not rows:
        return None, []
    fig = _figure(secondary=True)
    days = [r["date"] for r in rows]
    fig.add_bar(x=days, y=[r["answered"] for r in rows], name="answered", marker_color=ANSWERED,
                customdata=[r["p50_latency_ms"] or 0 for r in rows],
                hovertemplate="%{x}: %{y} answered, median %{customdata:.0f} ms<extra></extra>")
    fig.add_bar(x=days, y=[r["refused"] for r in rows], name="refused (not an image, too large, ...)",
                marker_color=REFUSED, hovertemplate="%{x}: %{y} refused<extra></extra>")
    if any(r["answered"] for r in rows):
        fig.add_scatter(x=days, y=[r["share_not_sure"] for r in rows], name="share answered 'not sure'",
                        mode="lines+markers", line={"color": NOT_SURE}, marker={"size": 9}, secondary_y=True,
                        hovertemplate="%{x}: %{y:.0%} of answers below the threshold<extra></extra>")
    fig.update_layout(barmode="stack", xaxis={"type": "category", "title": "day"})
    few = max(r["requests"] for r in rows) <= 10  # whole requests: no 2.5 tick
    fig.update_yaxes(title_text="requests", rangemode="tozero", dtick=1 if few else None, secondary_y=False)
    fig.update_yaxes(title_text="answered 'not sure'", tickformat=".0%", range=[0, 1.05], showgrid=False,
                     secondary_y=True)
    return fig, []


def _curves(data: dict):
    rows = data["curves"]
    if not rows:
        return None, []
    fig = _figure()
    for run, colour in zip(dict.fromkeys(r["run"] for r in rows), CURVE_COLOURS):
        mine = [r for r in rows if r["run"] == run]
        key, what = ("val_acc", "validation") if any(r["val_acc"] is not None for r in mine) else ("train_acc", "training")
        points = [r for r in mine if r[key] is not None and math.isfinite(r[key])]
        fig.add_scatter(x=[r["epoch"] for r in points], y=[r[key] for r in points], mode="lines+markers",
                        name=run if key == "val_acc" else f"{run} (training accuracy: no validation images)",
                        line={"color": colour}, marker={"size": 8}, hovertemplate=f"{run}, epoch %{{x}}: {what} accuracy "
                                                              f"%{{y:.1%}}<extra></extra>")
    last = max(r["epoch"] for r in rows)
    fig.update_layout(xaxis={"title": "epoch", "tickformat": "d", "dtick": 1 if last <= 20 else None},
                      yaxis={"title": "validation accuracy", "tickformat": ".0%", "range": [0, 1.05]})
    return fig, []


CHARTS = (  # name, title, chart, what it shows and how to read it, what would fill it
    ("accuracy_by_version", "Accuracy by model version", _versions,
     "Each trained version's share of right answers: on its held-out test images, on the benchmark images, and on "
     "production answers a person reviewed. Higher is better; ★ marks the version in production.", EVALUATE),
    ("accuracy_over_time", "Accuracy over time", _over_time,
     "The same accuracies day by day: evaluations on the day they ran, reviewed production answers on the day the "
     "requests came. A production line falling below the test line means the images sent have changed.",
     "No evaluation or reviewed answer yet: run `curator evaluate {run} --split test`; reviewed production answers "
     "(`curator feedback`) join it by day."),
    ("per_class", "Accuracy by class", _per_class,
     "The share of each class's test images the newest evaluated run gets right, weakest first, with the change in "
     "points since the previous version (the black tick). The classes at the top need more or cleaner images.",
     EVALUATE),
    ("reliability", "Does the confidence mean what it says?", _reliability,
     "Answers grouped by the confidence the model gave (across) against the share it got right (up); bigger dots "
     "hold more answers. On the dashed line 80% confident means right 80% of the time; below it the model is "
     "over-confident, and a 'not sure' threshold (`curator thresholds`) should sit higher.", EVALUATE),
    ("usage", "Usage", _usage,
     "Requests per day to `curator serve`: answered, and refused (not an image, too large); the line is the share "
     "of answers below their class's threshold, marked 'not sure' for a person to check.",
     "No served requests yet: see `curator serve`."),
    ("training_curves", "Training curves", _curves,
     "Validation accuracy after each epoch of the newest training runs. A curve still rising at its end would gain "
     "from more epochs; one that falls after its peak is overfitting (`curator runs show RUN` diagnoses a run).",
     "No training curves yet: `curator train --splits BUILD`."),
)

_CSS = """
body{margin:0;background:#f7f8fa;color:#1a202c;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}
main{max-width:1280px;margin:0 auto;padding:28px 40px 60px}
h1{font-size:30px;margin:0}
.meta{color:#4a5568;margin:4px 0 20px}
.summary{display:grid;grid-template-columns:repeat(5,1fr);gap:14px;margin-bottom:10px}
.tile{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:14px 16px}
.tile .label{color:#4a5568;font-size:14px}
.tile .value{font-size:26px;font-weight:600;margin:2px 0;overflow-wrap:anywhere}
.tile .sub{color:#4a5568;font-size:14px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:18px 24px;margin-top:22px}
h2{font-size:22px;margin:0 0 6px}
.how{color:#2d3748;margin:8px 0 0}
.note{color:#2d3748;margin:6px 0 0;font-weight:600}
.empty{background:#f7f8fa;border:1px dashed #a0aec0;border-radius:6px;padding:28px;text-align:center;
 font-size:18px;color:#2d3748;margin:10px 0}
.csv{margin:6px 0 0;font-size:14px}
code{background:#edf2f7;border-radius:4px;padding:1px 5px;font-size:0.92em}
a{color:#2b6cb0}
"""
