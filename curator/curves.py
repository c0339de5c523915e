"""Reading a training run's curves: a verdict (good fit, overfitting, ...), a PNG and a text chart,
and, while a run trains, its best epoch and when to stop early (:class:`Progress`).

Every function takes ``epochs``, the run's per-epoch rows oldest first, each a dict with
``epoch`` (1-based, increasing), ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
``lr`` and ``seconds``. Accuracies are fractions in [0, 1]. ``val_*`` is None when the run had
no validation images, and a loss may be NaN or inf when training blew up. Nothing here prints;
matplotlib is imported only when a picture is drawn (:func:`pyplot`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from curator.errors import InvalidInput

MIN_EPOCHS = 3  # fewer epochs cannot show a trend
EXPLODE = 2.0  # final training loss above this many times its minimum (and above epoch 1's)
OVERFIT_AFTER = 2  # validation epochs needed after the minimum before calling it overfitting
# nats: a loss that rises or falls by less is noise (near a zero loss, 0.001 -> 0.002 doubles it;
# RESULTS.md, 2026-11-30 sweep)
MIN_RISE = 0.01
STILL_FALLING = 0.3  # recent loss fall per epoch, as a fraction of the run's average fall
PLATEAU = 0.01  # within one percentage point of the best accuracy is on the plateau
MIN_CHART_WIDTH = 24


def diagnose(epochs: list[dict], *, min_train_acc: float = 0.8, rise: float = 0.1) -> dict:
    """What the curves say about a run, checked in order of precedence.

    1. ``divergence``: a training or validation loss is NaN or inf (``from_epoch`` is the first
       such epoch; this wins even in a run too short for anything else), or the final training
       loss is more than ``EXPLODE`` (2x) its minimum and above the first epoch's loss
       (``from_epoch`` is the epoch after the minimum).
    2. ``too short``: fewer than ``MIN_EPOCHS`` (3) epochs.
    3. ``overfitting``: validation loss is lowest at epoch e, at least ``OVERFIT_AFTER`` (2)
       validation epochs follow, the last is more than ``rise`` (relative) and ``MIN_RISE`` (0.01)
       above the minimum, and training loss at the end is below training loss at e.
       ``from_epoch`` is the epoch after e.
       The end, not the peak, is compared, so a spike that recovers is not overfitting.
    4. ``underfitting``: training loss (and validation loss, when there is one) still falling at
       the end, over the last quarter of the epochs (at least one step) at no less than
       ``STILL_FALLING`` (30%) of the run's average pace; or the best training accuracy is below
       ``min_train_acc``.
    5. ``good fit``: anything else.

    Args:
        epochs: the run's rows, as described in the module docstring.
        min_train_acc: the training accuracy (a fraction) a model that fits its data reaches.
        rise: how far (relative) validation loss must climb above its minimum to overfit.

    Returns:
        ``{"verdict", "from_epoch", "plateau_epoch", "best_epoch", "detail"}``. ``plateau_epoch``
        is the first epoch whose validation accuracy (training accuracy without validation) is
        within ``PLATEAU`` (1 point) of the best; it is given for good fit, overfitting and low
        training accuracy, else None. ``best_epoch`` has the best validation accuracy (ties go to
        the lower validation loss) or, without validation, the lowest training loss. ``detail``
        is one sentence with the numbers.
    """
    found = (_nonfinite(epochs) or _too_short(epochs) or _exploding(epochs)
             or _overfitting(epochs, rise) or _still_improving(epochs)
             or _low_accuracy(epochs, min_train_acc) or _good_fit(epochs))
    result = {"verdict": None, "from_epoch": None, "plateau_epoch": None,
              "best_epoch": _best_epoch(epochs), "detail": ""}
    result.update(found)
    return result


def finite(value) -> bool:
    """A number that is neither None, NaN nor infinite."""
    return value is not None and math.isfinite(value)


def _series(epochs: list[dict], key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` for the rows where ``key`` holds a finite number."""
    return [(row["epoch"], float(row[key])) for row in epochs if finite(row.get(key))]


def _num(value: float) -> str:
    return f"{value:.3g}"


def _nonfinite(epochs: list[dict]) -> dict | None:
    for row in epochs:
        for key, name in (("train_loss", "training"), ("val_loss", "validation")):
            value = row.get(key)
            if value is not None and not math.isfinite(value):
                lr = f" (learning rate {row['lr']:g})" if finite(row.get("lr")) else ""
                return {"verdict": "divergence", "from_epoch": row["epoch"],
                        "detail": f"{name} loss became {value} at epoch {row['epoch']}{lr}: "
                                  f"try a lower learning rate"}
    return None


def _too_short(epochs: list[dict]) -> dict | None:
    if len(epochs) >= MIN_EPOCHS:
        return None
    noun = "epoch" if len(epochs) == 1 else "epochs"
    return {"verdict": "too short",
            "detail": f"only {len(epochs)} {noun} recorded: at least {MIN_EPOCHS} are needed "
                      f"to read a trend"}


def _exploding(epochs: list[dict]) -> dict | None:
    train = _series(epochs, "train_loss")
    if len(train) < 2:
        return None
    i = min(range(len(train)), key=lambda k: train[k][1])
    (low_epoch, low), (end_epoch, end), start = train[i], train[-1], train[0][1]
    if not (end > EXPLODE * low and end > start):
        return None
    return {"verdict": "divergence", "from_epoch": train[i + 1][0],
            "detail": f"training loss rose from its minimum {_num(low)} at epoch {low_epoch} to "
                      f"{_num(end)} at epoch {end_epoch}, above the {_num(start)} it started at: "
                      f"try a lower learning rate"}


def _overfitting(epochs: list[dict], rise: float) -> dict | None:
    val = _series(epochs, "val_loss")
    if not val:
        return None
    i = min(range(len(val)), key=lambda k: val[k][1])
    (low_epoch, low), (end_epoch, end) = val[i], val[-1]
    if len(val) - 1 - i < OVERFIT_AFTER or end - low <= max(rise * abs(low), MIN_RISE):
        return None
    train = dict(_series(epochs, "train_loss"))
    train_low, train_end = train.get(low_epoch), train.get(end_epoch)
    if train_low is None or train_end is None or train_end >= train_low:
        return None
    return {"verdict": "overfitting", "from_epoch": val[i + 1][0], "plateau_epoch": _plateau(epochs),
            "detail": f"validation loss rose from {_num(low)} at epoch {low_epoch} to {_num(end)} "
                      f"at epoch {end_epoch} while training loss fell from {_num(train_low)} "
                      f"to {_num(train_end)}"}


def _recent_fall(points: list[tuple[int, float]]) -> tuple[float, float, int] | None:
    """``(before, last, steps)`` when the loss is still falling at the end, else None.

    The last quarter of the points (at least one step) must fall per step at no less than
    ``STILL_FALLING`` of the average fall per step over the whole run.
    """
    if len(points) < 2:
        return None
    steps = max(1, len(points) // 4)
    first, before, last = points[0][1], points[-1 - steps][1], points[-1][1]
    average = (first - last) / (len(points) - 1)
    recent = (before - last) / steps
    if average > 0 and recent > 0 and recent >= STILL_FALLING * average:
        return before, last, steps
    return None


def _still_improving(epochs: list[dict]) -> dict | None:
    train = _recent_fall(_series(epochs, "train_loss"))
    has_val = bool(_series(epochs, "val_loss"))
    val = _recent_fall(_series(epochs, "val_loss")) if has_val else None
    if train is None or (has_val and val is None):
        return None
    what = f"training loss fell from {_num(train[0])} to {_num(train[1])}"
    if val is not None:
        what += f" and validation loss from {_num(val[0])} to {_num(val[1])}"
    noun = "epoch" if train[2] == 1 else f"{train[2]} epochs"
    return {"verdict": "underfitting",
            "detail": f"still improving at the last epoch: train longer ({what} over the last "
                      f"{noun})"}


def _low_accuracy(epochs: list[dict], min_train_acc: float) -> dict | None:
    acc = _series(epochs, "train_acc")
    if not acc:
        return None
    best_epoch, best = max(acc, key=lambda p: p[1])
    if best >= min_train_acc:
        return None
    return {"verdict": "underfitting", "plateau_epoch": _plateau(epochs),
            "detail": f"training accuracy peaked at {best:.1%} at epoch {best_epoch}, below "
                      f"{min_train_acc:.1%}: the model does not fit even its training data; "
                      f"try a bigger model, a higher learning rate or cleaner labels"}


def _accuracy_key(epochs: list[dict]) -> str:
    return "val_acc" if _series(epochs, "val_acc") else "train_acc"


def _plateau(epochs: list[dict]) -> int | None:
    acc = _series(epochs, _accuracy_key(epochs))
    if not acc:
        return None
    best = max(value for _, value in acc)
    # The tolerance keeps 0.89 within one point of 0.90 despite float rounding.
    return next(epoch for epoch, value in acc if value >= best - PLATEAU - 1e-9)


def _good_fit(epochs: list[dict]) -> dict:
    plateau = _plateau(epochs)
    if plateau is None:
        return {"verdict": "good fit",
                "detail": "losses settled without diverging or overfitting (no accuracy recorded)"}
    key = _accuracy_key(epochs)
    acc = dict(_series(epochs, key))
    name = "validation" if key == "val_acc" else "training"
    return {"verdict": "good fit", "plateau_epoch": plateau,
            "detail": f"{name} accuracy reached {acc[plateau]:.1%} at epoch {plateau}, within one "
                      f"point of its best, {max(acc.values()):.1%}"}


def _rank(acc: float | None, loss: float | None) -> tuple[float, float]:
    """Where an epoch ranks for the best one, lowest first: higher accuracy, then lower loss (a
    missing accuracy is below any, a missing or non-finite loss above any)."""
    return -(acc if finite(acc) else -1.0), loss if finite(loss) else math.inf


def _best_epoch(epochs: list[dict]) -> int | None:
    """Best validation accuracy (ties: lower validation loss); without validation, lowest train loss."""
    rows = [row for row in epochs if finite(row.get("val_acc"))]
    if rows:
        return min(rows, key=lambda row: _rank(row["val_acc"], row.get("val_loss")))["epoch"]
    train = _series(epochs, "train_loss")
    return min(train, key=lambda p: p[1])[0] if train else None


@dataclass
class Progress:
    """A training run's best epoch so far and its epochs without progress, kept in ``last.pt``.

    The best epoch (``best.pt``) ranks first by :func:`_rank`, as :func:`_best_epoch` reads it
    afterwards: the highest validation accuracy, ties broken by the lower validation loss (the
    training loss when there are no validation images). Progress is a better epoch *or* a loss more than
    ``MIN_RISE`` below the lowest so far: at a low accuracy, noisy from epoch to epoch, the loss
    still shows a run that learns (RESULTS.md, 2026-11-30 sweep: from scratch at lr 1e-4, stopped
    on accuracy alone at epoch 14 while its validation loss fell).
    """

    best_acc: float = -1.0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    lowest_loss: float = math.inf

    def step(self, epoch: int, acc: float | None, loss: float | None, *, keep: bool = False) -> bool:
        """Count one epoch; True when it is the new best (``keep``: always, as a final fit keeps
        its last epoch)."""
        acc = acc if finite(acc) else -1.0
        loss = loss if finite(loss) else math.inf
        better = keep or _rank(acc, loss) < _rank(self.best_acc, self.best_loss)
        falling = loss < self.lowest_loss - MIN_RISE
        if better:
            self.best_acc, self.best_loss, self.best_epoch = acc, loss, epoch
        if falling:
            self.lowest_loss = loss
        self.bad_epochs = 0 if better or falling else self.bad_epochs + 1
        return better

    def stalled(self, patience: int) -> bool:
        """``patience`` epochs in a row without progress: time to stop."""
        return self.bad_epochs >= patience


def plot_png(epochs: list[dict], path: str | Path, *, title: str | None = None,
             diagnosis: dict | None = None) -> Path:
    """Write :func:`figure` as a PNG. The folder is created.

    Returns:
        The path written.

    Raises:
        InvalidInput: ``epochs`` is empty.
    """
    return save_png(figure(epochs, title=title, diagnosis=diagnosis), path)


def pyplot():
    """matplotlib's pyplot on its Agg backend (files, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as a 100-dpi PNG at ``path`` (its folder made), then close it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
    finally:
        pyplot().close(fig)
    return path


# The verdict's colour in the picture's text box: green is fine, amber is worth a look, red is not.
VERDICT_COLOURS = {"good fit": "#e3f4e1", "too short": "#fdf0d5", "underfitting": "#fdf0d5",
                   "overfitting": "#fbe0dc", "divergence": "#fbe0dc"}


def figure(epochs: list[dict], *, title: str | None = None, diagnosis: dict | None = None):
    """Loss (train, val) and accuracy (train, val) side by side on whole-epoch axes, the best
    epoch marked, and the diagnosis written on the picture so that it stands alone: the verdict
    in the title, its detail in a box below the panels.

    Missing (None) and non-finite values are left out of the lines. The caller closes the
    figure (``matplotlib.pyplot.close``).

    Args:
        epochs: the run's rows, as described in the module docstring.
        title: what the picture is of (the run's name); the verdict follows it.
        diagnosis: :func:`diagnose`'s answer [default: diagnose(epochs)].

    Raises:
        InvalidInput: ``epochs`` is empty.
    """
    if not epochs:
        raise InvalidInput("no epochs to plot: the run recorded none")
    import textwrap

    plt = pyplot()
    found = diagnosis or diagnose(epochs)
    best = _best_epoch(epochs)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4.8))
    _panel(loss_ax, epochs, "loss", best)
    _panel(acc_ax, epochs, "acc", best)
    fig.suptitle(f"{title}: {found['verdict']}" if title else f"Diagnosis: {found['verdict']}",
                 fontsize=13, fontweight="bold")
    fig.text(0.5, 0.03, textwrap.fill(found["detail"], 110), ha="center", va="bottom", fontsize=10,
             bbox={"boxstyle": "round,pad=0.5", "facecolor": VERDICT_COLOURS.get(found["verdict"], "#eeeeee"),
                   "edgecolor": "#999999"})
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def _panel(ax, epochs: list[dict], metric: str, best: int | None) -> None:
    """One panel: the train and val series of ``metric`` ("loss" or "acc")."""
    for split, style in (("train", "-"), ("val", "--")):
        points = _series(epochs, f"{split}_{metric}")
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, style, marker=".", label=split)
    if best is not None:
        ax.axvline(best, color="grey", linestyle=":", linewidth=1, label=f"best (epoch {best})")
    from matplotlib.ticker import MaxNLocator

    # Epochs are whole: no 2.5 tick, and half an epoch of room either side of a short run.
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    first, last = epochs[0]["epoch"], epochs[-1]["epoch"]
    ax.set_xlim(first - 0.5, last + 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" if metric == "loss" else "accuracy")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def terminal_chart(epochs: list[dict], *, width: int = 60, height: int = 12) -> str:
    """Train (``t``) and val (``v``) loss per epoch as plain text; ``*`` where both land.

    The chart is ``height + 3`` lines: a legend, ``height`` plot rows labelled with the highest
    and lowest loss, the x-axis and the first and last epoch numbers; no line is longer than
    ``width``. Epochs are spread over the columns, and when there are more epochs than columns
    the values falling in one column are averaged. None, NaN and inf are skipped.

    Raises:
        InvalidInput: ``width`` below ``MIN_CHART_WIDTH`` or ``height`` below 2.
    """
    if width < MIN_CHART_WIDTH or height < 2:
        raise InvalidInput(f"a chart needs width >= {MIN_CHART_WIDTH} and height >= 2, got "
                           f"width {width} and height {height}")
    train, val = _series(epochs, "train_loss"), _series(epochs, "val_loss")
    values = [value for _, value in train + val]
    if not values:
        return "no finite loss to chart"
    lo, hi = min(values), max(values)
    labels = (_num(hi), _num(lo))
    label_width = max(map(len, labels))
    plot_width = width - label_width - 2
    span = (epochs[0]["epoch"], epochs[-1]["epoch"])
    grid = [[" "] * plot_width for _ in range(height)]
    for points, mark in ((train, "t"), (val, "v")):
        for col, value in _columns(points, span, plot_width):
            row = _row(value, lo, hi, height)
            grid[row][col] = mark if grid[row][col] in (" ", mark) else "*"
    legend = "loss: t train" + (", v val, * both" if val else "")
    return "\n".join([legend[:width], *_frame(grid, labels, label_width, span)])


def _columns(points: list[tuple[int, float]], span: tuple[int, int], width: int):
    """``(column, mean value)`` for each column the epochs in ``points`` land in."""
    first, last = span
    buckets: dict[int, list[float]] = {}
    for epoch, value in points:
        col = round((epoch - first) * (width - 1) / (last - first)) if last > first else 0
        buckets.setdefault(col, []).append(value)
    return [(col, sum(vals) / len(vals)) for col, vals in buckets.items()]


def _row(value: float, lo: float, hi: float, height: int) -> int:
    """The grid row (0 at the top, the highest loss) of ``value``."""
    if hi == lo:
        return height // 2
    return round((hi - value) / (hi - lo) * (height - 1))


def _frame(grid: list[list[str]], labels: tuple[str, str], label_width: int,
           span: tuple[int, int]) -> list[str]:
    """The plot rows with y labels on the top and bottom rows, then the x-axis and its epochs."""
    height, plot_width = len(grid), len(grid[0])
    lines = []
    for r, cells in enumerate(grid):
        label = labels[0] if r == 0 else labels[1] if r == height - 1 else ""
        lines.append(f"{label:>{label_width}} |{''.join(cells)}".rstrip())
    first, last = (str(epoch) for epoch in span)
    ticks = first if span[0] == span[1] else first + last.rjust(plot_width - len(first))
    lines.append(" " * label_width + " +" + "-" * plot_width)
    lines.append((" " * (label_width + 2) + ticks)[:label_width + 2 + plot_width])
    return lines
