"""Reports a team can show: how the model performs, version against version, and how it is used.

``gather`` reads the library into plain data (each table is the data behind one plot);
``html`` renders a self-contained page (plots as embedded PNGs, each with its data as a CSV
download); the CLI prints ``--json`` or key numbers as tables.

- versions: each finished run's accuracy on its test and benchmark splits (latest
  ``curator evaluate``) and on reviewed production traffic (``curator feedback``)
- over_time: the same accuracies by day (evaluations by the day they ran, production by the
  day the requests came)
- per_class: the newest evaluated run's per-class accuracy (recall) on test, and the change
  since the previous version (its parent, else the run evaluated before it)
- reliability: accuracy by confidence bucket (a reliability diagram) of that run on its test
  images, and of reviewed production answers
- usage: requests per day, answered and refused, share below the class threshold, p50 latency
- curves: the training curves of the latest runs
"""

from __future__ import annotations

import base64
import csv
import html as html_lib
import io
import json
from collections import defaultdict
from datetime import datetime

import numpy as np
from sqlalchemy import select

from curator.evaluation import confidence_bins
from curator.library import Library
from curator.library.models import (
    ACTIVE,
    LABELLED,
    Evaluation,
    Image,
    LabelClass,
    Prediction,
    Run,
    RunEpoch,
    SplitMember,
    Transaction,
)

BUCKETS = 10
CURVE_RUNS = 4


def gather(lib: Library, since: datetime | None = None) -> dict:
    """Everything the report shows, as plain data (``since`` limits dated rows)."""
    with lib.session() as s:
        runs = list(s.scalars(select(Run).where(Run.status == "done").order_by(Run.id)))
        evals = _latest_evaluations(s)
        traffic = list(s.scalars(select(Transaction).where(*([Transaction.at >= since] if since else []))
                                 .order_by(Transaction.id)))
        production = max((r for r in runs if r.promoted_at), key=lambda r: r.promoted_at, default=None)
        versions = []
        for r in runs:
            reviewed = [t for t in traffic if t.run_id == r.id and t.correct is not None]
            test, bench = evals.get((r.id, "test")), evals.get((r.id, "benchmark"))
            versions.append({
                "run": r.name, "created_at": r.created_at.isoformat(timespec="seconds"),
                "parent": r.parent.name if r.parent else None, "production": production is not None and r.id == production.id,
                "throwaway": r.throwaway, "classes": len(json.loads(r.classes)),
                "test_accuracy": test and test["accuracy"], "test_n": test and test["n"],
                "benchmark_accuracy": bench and bench["accuracy"], "benchmark_n": bench and bench["n"],
                "production_accuracy": _share(reviewed), "production_reviewed": len(reviewed),
                "requests": sum(t.run_id == r.id for t in traffic)})
        over_time = _over_time(s, runs, traffic, since)
        latest = next((r for r in reversed(runs) if (r.id, "test") in evals), None)
        per_class = _per_class(runs, evals, latest)
        reliability = _reliability(s, latest, traffic)
        curves = [{"run": r.name, **{k: getattr(e, k) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")}}
                  for r in runs[-CURVE_RUNS:]
                  for e in s.scalars(select(RunEpoch).where(RunEpoch.run_id == r.id).order_by(RunEpoch.epoch))]
    return {"generated_at": datetime.now().isoformat(timespec="seconds"), "library": lib.display,
            "since": since.isoformat() if since else None, "production": production.name if production else None,
            "versions": versions, "over_time": over_time, "per_class": per_class, "reliability": reliability,
            "usage": _usage(traffic), "curves": curves}


def _share(reviewed: list) -> float | None:
    return sum(bool(t.correct) for t in reviewed) / len(reviewed) if reviewed else None


def _latest_evaluations(s) -> dict[tuple[int, str], dict]:
    out = {}
    for e in s.scalars(select(Evaluation).order_by(Evaluation.id)):
        out[e.run_id, e.split] = {**json.loads(e.metrics), "at": e.created_at}
    return out


def _over_time(s, runs, traffic, since) -> list[dict]:
    names = {r.id: r.name for r in runs}
    rows = []
    for e in s.scalars(select(Evaluation).where(Evaluation.split.in_(("test", "benchmark"))).order_by(Evaluation.id)):
        if e.run_id in names and (since is None or e.created_at >= since):
            m = json.loads(e.metrics)
            rows.append({"date": e.created_at.date().isoformat(), "run": names[e.run_id], "source": e.split,
                         "accuracy": m["accuracy"], "n": m["n"]})
    by_day = defaultdict(list)
    for t in traffic:
        if t.correct is not None:
            by_day[t.at.date().isoformat(), names.get(t.run_id, "?")].append(t)
    rows += [{"date": d, "run": run, "source": "production", "accuracy": _share(ts), "n": len(ts)}
             for (d, run), ts in sorted(by_day.items())]
    return sorted(rows, key=lambda r: (r["date"], r["source"], r["run"]))


def _previous(runs, evals, latest):
    if latest is None:
        return None
    if latest.parent and (latest.parent.id, "test") in evals:
        return latest.parent
    return next((r for r in reversed(runs) if r.id < latest.id and (r.id, "test") in evals), None)


def _per_class(runs, evals, latest) -> dict:
    if latest is None:
        return {"run": None, "previous": None, "rows": []}
    previous = _previous(runs, evals, latest)
    before = {c["class"]: c for c in evals[previous.id, "test"]["per_class"]} if previous else {}
    rows = []
    for c in evals[latest.id, "test"]["per_class"]:
        was = before.get(c["class"])
        rows.append({"class": c["class"], "accuracy": c["recall"], "support": c["support"],
                     "previous": was["recall"] if was else None,
                     "change": c["recall"] - was["recall"] if was else None})
    return {"run": latest.name, "previous": previous.name if previous else None, "rows": rows}


def _buckets(confidence: np.ndarray, correct: np.ndarray) -> list[dict]:
    edges = np.linspace(0, 1, BUCKETS + 1)
    which = confidence_bins(confidence, BUCKETS)
    rows = []
    for b in range(BUCKETS):
        mine = which == b
        rows.append({"low": round(float(edges[b]), 2), "high": round(float(edges[b + 1]), 2), "n": int(mine.sum()),
                     "confidence": float(confidence[mine].mean()) if mine.any() else None,
                     "accuracy": float(correct[mine].mean()) if mine.any() else None})
    return rows


def _reliability(s, latest, traffic) -> dict:
    out = {"run": latest.name if latest else None, "test": [], "production": []}
    if latest is not None:
        rows = s.execute(
            select(LabelClass.name, Prediction.predicted, Prediction.confidence)
            .join(Image, Image.id == Prediction.image_id).join(LabelClass, LabelClass.id == Image.class_id)
            .join(SplitMember, (SplitMember.image_id == Image.id) & (SplitMember.build_id == latest.build_id))
            .where(Prediction.run_id == latest.id, SplitMember.split == "test", Prediction.error.is_(None),
                   Image.status == ACTIVE, Image.label_state == LABELLED)).all()
        if rows:
            out["test"] = _buckets(np.array([r[2] for r in rows]), np.array([r[0] == r[1] for r in rows]))
    reviewed = [t for t in traffic if t.correct is not None and t.confidence is not None]
    if reviewed:
        out["production"] = _buckets(np.array([t.confidence for t in reviewed]), np.array([bool(t.correct) for t in reviewed]))
    return out


def _usage(traffic) -> list[dict]:
    by_day = defaultdict(list)
    for t in traffic:
        by_day[t.at.date().isoformat()].append(t)
    rows = []
    for day, ts in sorted(by_day.items()):
        answered = [t for t in ts if t.status == 200]
        not_sure = sum(t.sure is False for t in answered)
        rows.append({"date": day, "requests": len(ts), "answered": len(answered), "refused": len(ts) - len(answered),
                     "not_sure": not_sure, "share_not_sure": not_sure / len(answered) if answered else None,
                     "p50_latency_ms": float(np.median([t.latency_ms for t in answered])) if answered else None})
    return rows


# -- the page -------------------------------------------------------------------------------------

def tables(data: dict) -> dict[str, list[dict]]:
    """The data behind each plot, by plot name (what the CSV downloads hold)."""
    return {
        "accuracy_by_version": data["versions"], "accuracy_over_time": data["over_time"],
        "per_class": data["per_class"]["rows"],
        "reliability": [{"source": src, **row} for src in ("test", "production") for row in data["reliability"][src]],
        "usage": data["usage"], "training_curves": data["curves"],
    }


def to_csv(rows: list[dict]) -> str:
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=100)
    return plt, fig, ax


def _png(plt, fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plot_versions(rows):
    plt, fig, ax = _figure()
    x = np.arange(len(rows))
    for k, (key, name) in enumerate((("test_accuracy", "test"), ("benchmark_accuracy", "benchmark"),
                                     ("production_accuracy", "reviewed production"))):
        ax.bar(x + (k - 1) * 0.27, [r[key] or 0 for r in rows], 0.27, label=name)
    ax.set_xticks(x, [r["run"] + (" *" if r["production"] else "") for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1), ax.set_ylabel("accuracy"), ax.legend(fontsize=8), ax.set_title("Accuracy by model version (* production)")
    return _png(plt, fig)


def _plot_over_time(rows):
    plt, fig, ax = _figure()
    for source in ("test", "benchmark", "production"):
        mine = [r for r in rows if r["source"] == source]
        if mine:
            ax.plot([r["date"] for r in mine], [r["accuracy"] for r in mine], marker="o", label=source)
    ax.set_ylim(0, 1), ax.set_ylabel("accuracy"), ax.set_title("Accuracy over time")
    if rows:
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    return _png(plt, fig)


def _plot_per_class(pc):
    rows = pc["rows"]
    plt, fig, ax = _figure()
    fig.set_size_inches(7.5, max(2.5, 0.28 * len(rows) + 1))
    y = np.arange(len(rows))
    ax.barh(y, [r["accuracy"] for r in rows], color="tab:blue", label=pc["run"] or "")
    prev = [(i, r["previous"]) for i, r in enumerate(rows) if r["previous"] is not None]
    if prev:
        ax.scatter([p for _, p in prev], [i for i, _ in prev], color="black", marker="|", s=120, label=f"{pc['previous']}")
    ax.set_yticks(y, [r["class"] for r in rows], fontsize=7), ax.set_xlim(0, 1), ax.invert_yaxis()
    ax.set_xlabel("accuracy (recall) on test"), ax.set_title("Per-class accuracy, and the previous version")
    if rows:
        ax.legend(fontsize=8, loc="lower right")
    return _png(plt, fig)


def _plot_reliability(rel):
    plt, fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for src, color in (("test", "tab:blue"), ("production", "tab:orange")):
        pts = [r for r in rel[src] if r["n"]]
        if pts:
            ax.plot([r["confidence"] for r in pts], [r["accuracy"] for r in pts], marker="o", color=color,
                    label=f"{src} ({sum(r['n'] for r in pts)})")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.set_xlabel("confidence"), ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy by confidence bucket ({rel['run'] or 'no run'})"), ax.legend(fontsize=8)
    return _png(plt, fig)


def _plot_usage(rows):
    plt, fig, ax = _figure()
    days = [r["date"] for r in rows]
    ax.bar(days, [r["answered"] for r in rows], label="answered")
    ax.bar(days, [r["refused"] for r in rows], bottom=[r["answered"] for r in rows], label="refused (4xx)")
    ax.set_ylabel("requests per day"), ax.tick_params(axis="x", labelsize=8)
    twin = ax.twinx()
    twin.plot(days, [r["share_not_sure"] or 0 for r in rows], color="black", marker="o", label="share not sure")
    twin.set_ylim(0, 1), twin.set_ylabel("share below threshold")
    ax.set_title("Usage"), ax.legend(fontsize=8, loc="upper left")
    return _png(plt, fig)


def _plot_curves(rows):
    plt, fig, ax = _figure()
    for run in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == run and r["val_acc"] is not None]
        if mine:
            ax.plot([r["epoch"] for r in mine], [r["val_acc"] for r in mine], marker=".", label=run)
    ax.set_xlabel("epoch"), ax.set_ylabel("validation accuracy"), ax.set_ylim(0, 1)
    ax.set_title("Training curves of the latest runs")
    if rows:
        ax.legend(fontsize=8)
    return _png(plt, fig)


PLOTS = (
    ("accuracy_by_version", "Accuracy by model version", lambda d: _plot_versions(d["versions"])),
    ("accuracy_over_time", "Accuracy over time", lambda d: _plot_over_time(d["over_time"])),
    ("per_class", "Per-class accuracy and change", lambda d: _plot_per_class(d["per_class"])),
    ("reliability", "Reliability diagram", lambda d: _plot_reliability(d["reliability"])),
    ("usage", "Usage", lambda d: _plot_usage(d["usage"])),
    ("training_curves", "Training curves", lambda d: _plot_curves(d["curves"])),
)


def key_numbers(data: dict) -> list[tuple[str, str]]:
    """The headline figures, for the page's top and the terminal."""
    latest = next((v for v in reversed(data["versions"]) if v["test_accuracy"] is not None), None)
    usage = data["usage"]
    answered = sum(r["answered"] for r in usage)
    not_sure = sum(r["not_sure"] for r in usage)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    return [
        ("production run", data["production"] or "-"),
        ("newest evaluated run", latest["run"] if latest else "-"),
        ("its test accuracy", fmt(latest and latest["test_accuracy"])),
        ("previous version", data["per_class"]["previous"] or "-"),
        ("requests", str(sum(r["requests"] for r in usage))),
        ("answered below threshold", f"{not_sure / answered:.1%}" if answered else "-"),
        ("reviewed production accuracy", fmt(_share_all(data))),
    ]


def _share_all(data):
    n = sum(v["production_reviewed"] for v in data["versions"])
    return sum((v["production_accuracy"] or 0) * v["production_reviewed"] for v in data["versions"]) / n if n else None


def html(data: dict) -> str:
    """A self-contained HTML page: key numbers, six plots, and each plot's data as CSV."""
    esc = html_lib.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>curator report</title><style>{_CSS}</style>"
             "</head><body>", f"<h1>curator report</h1><p class='meta'>{esc(data['library'])}, generated"
             f" {esc(data['generated_at'])}" + (f", since {esc(data['since'])}" if data["since"] else "") + "</p>",
             "<table class='keys'>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in key_numbers(data))
             + "</table>"]
    data_tables = tables(data)
    for name, title, plot in PLOTS:
        rows = data_tables[name]
        csv_text = to_csv(rows)
        link = (f"<a download='{name}.csv' href='data:text/csv;base64,{base64.b64encode(csv_text.encode()).decode()}'>"
                f"data as CSV ({len(rows)} rows)</a>")
        parts.append(f"<section id='{name}'><h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,"
                     f"{plot(data)}'><p>{link}</p></section>")
    parts.append("</body></html>")
    return "\n".join(parts)


_CSS = """body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}
h1{margin-bottom:0}.meta{color:#666}table.keys{border-collapse:collapse;margin:1em 0}
table.keys th{text-align:left;padding:2px 1.5em 2px 0;font-weight:normal;color:#555}
table.keys td{font-weight:bold}section{margin:2em 0}img{max-width:100%}"""
