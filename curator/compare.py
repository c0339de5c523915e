"""Runs side by side: their curves overlaid, the options that differ, and the run to prefer.

The recipe's rule for choosing among runs: the lowest validation loss whose curve does not trend
back up. ``prefer`` applies it to each run's curves (``curator.curves.diagnose``): a run that
diverged or overfits is passed over for one that does not, whatever its minimum; among the rest
the lowest validation loss wins (ties: the higher validation accuracy, then fewer epochs to it).
When every run overfits or diverges, the lowest validation loss of the ones that did not diverge
wins, and the reason says its best checkpoint is the one to keep. Each pass-over is named with
its reason, so the answer reads as the recipe's exercise asks: "A: underfit, B: well fit, C:
overfit from epoch 7, D: divergent".

``epochs`` rows are ``curator.curves``'s; ``x="time"`` puts cumulative seconds on the x-axis
(batch sizes compared by wall-clock time).
"""

from __future__ import annotations

import math
from pathlib import Path

from curator import curves
from curator.errors import InvalidInput
from curator.library import Library

METRICS = {"loss": "loss", "accuracy": "acc"}
XS = ("epoch", "time")
TRENDS_UP = ("overfitting", "divergence")
SPARK = "▁▂▃▄▅▆▇█"


def best_val(epochs: list[dict]) -> tuple[float | None, int | None, float | None]:
    """(lowest finite validation loss, its epoch, the validation accuracy there)."""
    rows = [r for r in epochs if curves.finite(r.get("val_loss"))]
    if not rows:
        return None, None, None
    row = min(rows, key=lambda r: (r["val_loss"], r["epoch"]))
    return row["val_loss"], row["epoch"], row.get("val_acc")


def prefer(runs: list[dict]) -> dict:
    """The run the recipe's rules pick among ``runs`` (each ``{"name", "epochs", "diagnosis"}``).

    Returns:
        ``{"run": name or None, "why": one sentence, "passed_over": {name: reason}}``.
    """
    scored, passed = [], {}
    for r in runs:
        loss, epoch, acc = best_val(r["epochs"])
        verdict = r["diagnosis"]["verdict"]
        if r.get("status") == "failed":
            passed[r["name"]] = "failed: its training loss stopped being a number (diverged)"
        elif loss is None:
            passed[r["name"]] = "no validation loss recorded"
        elif verdict == "divergence":
            passed[r["name"]] = f"diverged ({r['diagnosis']['detail']})"
        else:
            scored.append((verdict in TRENDS_UP, loss, -(acc or 0), epoch, r["name"], verdict))
    if not scored:
        return {"run": None, "why": "no run has a usable validation curve", "passed_over": passed}
    scored.sort()
    up, loss, _, epoch, name, verdict = scored[0]
    for other in scored[1:]:
        passed[other[4]] = (f"overfits from epoch {_from(runs, other[4])}" if other[5] == "overfitting"
                            else f"higher validation loss ({other[1]:.4g} against {loss:.4g})")
    why = f"lowest validation loss, {loss:.4g} at epoch {epoch}"
    why += (", but its validation loss climbs back after it: keep that epoch's checkpoint (every run overfits)"
            if up else f", and its validation loss does not trend back up ({verdict})")
    if verdict == "underfitting":
        why += "; it was still improving: train it longer"
    return {"run": name, "why": why, "passed_over": passed}


def _from(runs: list[dict], name: str):
    return next(r["diagnosis"]["from_epoch"] for r in runs if r["name"] == name)


def differing(params: dict[str, dict]) -> dict[str, dict]:
    """The options whose values differ between runs: ``{option: {run: value}}``."""
    keys = sorted({k for p in params.values() for k in p})
    out = {}
    for k in keys:
        values = {name: p.get(k) for name, p in params.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out[k] = values
    return out


def xs(epochs: list[dict], x: str) -> list[float]:
    """The x value of each epoch: its number, or the seconds trained by its end."""
    if x == "epoch":
        return [r["epoch"] for r in epochs]
    total, out = 0.0, []
    for r in epochs:
        total += r.get("seconds") or 0.0
        out.append(round(total, 2))
    return out


def sparkline(values: list[float | None]) -> str:
    """A row of block characters for ``values`` (low to high); a space where one is missing."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    return "".join(" " if v is None or not math.isfinite(v) else
                   SPARK[0 if hi == lo else round((v - lo) / (hi - lo) * (len(SPARK) - 1))] for v in values)


def compare(lib: Library, refs: list[str], *, x: str = "epoch", metric: str = "loss",
            png: str | Path | None = None) -> dict:
    """Two or more runs side by side.

    Args:
        refs: run names or ids (``latest``, ``production`` too).
        x: ``epoch`` or ``time`` (cumulative seconds of training) on the x-axis.
        metric: ``loss`` or ``accuracy``: the curves drawn.
        png: where to write the picture [default: ``compare.png`` in the first run's folder].

    Returns:
        ``{"runs": [{name, model, epochs, diagnosis, best_val_loss, best_val_epoch, best_val_acc,
        seconds, curves}], "options": differing, "preferred": prefer's answer, "png": path}``.

    Raises:
        InvalidInput: fewer than two runs, a run named twice, or a bad ``x`` or ``metric``.
        NotFound: no such run.
    """
    from curator import runs as runs_lib

    if x not in XS:
        raise InvalidInput(f"--x {x}: use one of {', '.join(XS)}")
    if metric not in METRICS:
        raise InvalidInput(f"--metric {metric}: use one of {', '.join(METRICS)}")
    infos = [runs_lib.summary(lib, ref) for ref in refs]
    names = [i["name"] for i in infos]
    if len(set(names)) < 2 or len(set(names)) < len(names):
        raise InvalidInput("name two or more different runs: `curator runs` lists them")
    rows = []
    for info in infos:
        epochs = runs_lib.epochs(lib, info["name"])
        loss, epoch, acc = best_val(epochs)
        rows.append({"name": info["name"], "model": info["model"], "status": info["status"], "epochs": epochs,
                     "diagnosis": curves.diagnose(epochs), "best_val_loss": loss, "best_val_epoch": epoch,
                     "best_val_acc": acc, "seconds": round(sum(r.get("seconds") or 0 for r in epochs), 1),
                     "params": info["params"]})
    out = Path(png) if png else Path(infos[0]["folder"]) / "compare.png"
    plot_png(rows, out, x=x, metric=metric)
    return {"runs": rows, "options": differing({r["name"]: r["params"] for r in rows}),
            "preferred": prefer(rows), "png": str(out), "x": x, "metric": metric}


def plot_png(runs: list[dict], path: Path, *, x: str = "epoch", metric: str = "loss") -> Path:
    """Every run's train (solid) and validation (dashed) ``metric`` in one panel, a colour a run,
    each labelled with its diagnosis."""
    key = METRICS[metric]
    fig, ax = curves.pyplot().subplots(figsize=(9, 5))
    for i, r in enumerate(runs):
        at = xs(r["epochs"], x)
        for split, style in (("train", "-"), ("val", "--")):
            points = [(a, e[f"{split}_{key}"]) for a, e in zip(at, r["epochs"]) if curves.finite(e.get(f"{split}_{key}"))]
            if points:
                ax.plot(*zip(*points), style, color=f"C{i % 10}", marker=".",
                        label=f"{r['name']} {split}" + (f" ({r['diagnosis']['verdict']})" if split == "val" else ""))
    ax.set_xlabel("epoch" if x == "epoch" else "seconds of training")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{metric} by {x}: " + ", ".join(r["name"] for r in runs))
    fig.tight_layout()
    return curves.save_png(fig, path)
