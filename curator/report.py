"""Reports a team can show: how the model performs, version against version, and how it is used.

``gather`` reads the library into plain data (each table is the data behind one chart) and
``summary`` takes the headline figures from it; ``curator.report_page`` renders the HTML page
(interactive Plotly charts, each with its data as a CSV download); the CLI prints ``--json`` or
key numbers as tables. Only training runs count: helper runs (``suspects``' folds, sweeps) are
left out everywhere.

- versions: each finished run's accuracy on its test and benchmark splits (latest
  ``curator evaluate``) and on reviewed production traffic (``curator feedback``)
- over_time: the same accuracies by day (evaluations by the day they ran, production by the
  day the requests came)
- per_class: the newest evaluated run's per-class accuracy (recall) on test, and the change
  since the previous version (its parent, else the run evaluated before it); a class without
  test images has accuracy None
- reliability: accuracy by confidence bucket (a reliability diagram) of that run on its test
  images, and of reviewed production answers
- usage: requests per day, answered and refused, share below the class threshold, p50 latency
- curves: the training curves of the newest runs that recorded epochs
"""

from __future__ import annotations

import csv
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
    TRAIN_PURPOSE,
    SplitMember,
    Transaction,
)

BUCKETS = 10
CURVE_RUNS = 4


def gather(lib: Library, since: datetime | None = None) -> dict:
    """Everything the report shows, as plain data (``since`` limits dated rows)."""
    with lib.session() as s:
        # Helper runs (suspects' folds, sweeps) are no model version of the team's.
        runs = list(s.scalars(select(Run).where(Run.status == "done", Run.purpose == TRAIN_PURPOSE)
                              .order_by(Run.id)))
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
        curves = _curves(s, runs)
    return {"generated_at": datetime.now().isoformat(timespec="seconds"), "library": lib.display,
            "since": since.isoformat() if since else None, "production": production.name if production else None,
            "versions": versions, "over_time": over_time, "per_class": per_class, "reliability": reliability,
            "usage": _usage(traffic), "curves": curves}


def _curves(s, runs) -> list[dict]:
    """Per-epoch rows of the newest CURVE_RUNS runs that recorded any epochs."""
    epochs = {r.id: list(s.scalars(select(RunEpoch).where(RunEpoch.run_id == r.id).order_by(RunEpoch.epoch)))
              for r in runs}
    shown = [r for r in runs if epochs[r.id]][-CURVE_RUNS:]
    return [{"run": r.name, **{k: getattr(e, k) for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")}}
            for r in shown for e in epochs[r.id]]


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
    # A class without test images has no accuracy (not 0): scikit-learn's recall would say 0.
    scored = lambda c: c["recall"] if c["support"] else None  # noqa: E731
    before = {c["class"]: scored(c) for c in evals[previous.id, "test"]["per_class"]} if previous else {}
    rows = []
    for c in evals[latest.id, "test"]["per_class"]:
        now, was = scored(c), before.get(c["class"])
        rows.append({"class": c["class"], "accuracy": now, "support": c["support"], "previous": was,
                     "change": now - was if now is not None and was is not None else None})
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


def summary(data: dict) -> dict:
    """The headline figures, for the page's top and the terminal.

    Returns:
        ``{"newest", "test_accuracy", "previous", "previous_accuracy", "change", "production",
        "requests", "answered", "refused", "not_sure", "reviewed", "reviewed_accuracy"}``: the
        newest evaluated run and its test accuracy, the version it is compared with (its parent,
        else the run evaluated before it) and its test accuracy, the change between them; served
        requests, answered, refused, answered below threshold; reviewed answers and their accuracy.
        A figure with nothing behind it is None.
    """
    runs = {v["run"]: v for v in data["versions"]}
    newest, previous = runs.get(data["per_class"]["run"]), runs.get(data["per_class"]["previous"])
    test, before = newest and newest["test_accuracy"], previous and previous["test_accuracy"]
    usage, versions = data["usage"], data["versions"]
    reviewed = sum(v["production_reviewed"] for v in versions)
    right = sum((v["production_accuracy"] or 0) * v["production_reviewed"] for v in versions)
    return {
        "newest": newest and newest["run"], "test_accuracy": test,
        "previous": previous and previous["run"], "previous_accuracy": before,
        "change": test - before if test is not None and before is not None else None,
        "production": data["production"],
        **{k: sum(r[k] for r in usage) for k in ("requests", "answered", "refused", "not_sure")},
        "reviewed": reviewed, "reviewed_accuracy": right / reviewed if reviewed else None,
    }


def key_numbers(data: dict) -> list[tuple[str, str]]:
    """The headline figures as (label, text) rows, for the terminal."""
    s = summary(data)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    return [
        ("production run", s["production"] or "-"),
        ("newest evaluated run", s["newest"] or "-"),
        ("its test accuracy", fmt(s["test_accuracy"])),
        ("previous version", s["previous"] or "-"),
        ("previous version's test accuracy", fmt(s["previous_accuracy"])),
        ("requests", str(s["requests"])),
        ("answered below threshold", f"{s['not_sure'] / s['answered']:.1%}" if s["answered"] else "-"),
        ("reviewed production accuracy", fmt(s["reviewed_accuracy"])),
    ]
