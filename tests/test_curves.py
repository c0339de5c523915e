"""Reading recorded curves: the verdicts, their epochs and details, the PNG and the text chart."""

from __future__ import annotations

import math

import pytest

from curator.curves import MIN_CHART_WIDTH, MIN_RISE, Progress, diagnose, figure, plot_png, terminal_chart
from curator.errors import InvalidInput

NAN, INF = math.nan, math.inf


def run(train_loss, val_loss=None, train_acc=None, val_acc=None) -> list[dict]:
    """Rows as a training run records them; missing columns are None (no val) or 95% (train acc)."""
    n = len(train_loss)
    val_loss, val_acc = val_loss or [None] * n, val_acc or [None] * n
    train_acc = train_acc or [0.95] * n
    return [dict(epoch=i + 1, train_loss=train_loss[i], train_acc=train_acc[i], val_loss=val_loss[i],
                 val_acc=val_acc[i], lr=1e-3, seconds=12.5) for i in range(n)]


def with_values(rows: list[dict], key: str, changes: dict[int, float]) -> list[dict]:
    """A copy of ``rows`` with ``key`` replaced at the given (1-based) epochs."""
    return [{**row, key: changes.get(row["epoch"], row[key])} for row in rows]


# Losses settle; validation accuracy reaches 89% at epoch 7, best 90% at epochs 9 and 10.
GOOD = run([2.0, 1.2, 0.8, 0.55, 0.42, 0.36, 0.33, 0.31, 0.30, 0.295],
           [2.1, 1.3, 0.9, 0.65, 0.55, 0.50, 0.48, 0.47, 0.47, 0.468],
           [0.40, 0.60, 0.75, 0.85, 0.90, 0.92, 0.93, 0.94, 0.94, 0.95],
           [0.38, 0.58, 0.72, 0.82, 0.86, 0.88, 0.89, 0.895, 0.90, 0.90])

# Validation loss is lowest at epoch 6 (0.55), then climbs to 0.79 while training loss falls.
OVERFIT = run([2.0, 1.2, 0.8, 0.6, 0.45, 0.35, 0.28, 0.22, 0.17, 0.13, 0.10, 0.08],
              [2.1, 1.3, 0.9, 0.7, 0.6, 0.55, 0.58, 0.62, 0.66, 0.70, 0.74, 0.79],
              [0.40, 0.60, 0.75, 0.83, 0.88, 0.91, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99],
              [0.40, 0.60, 0.72, 0.80, 0.852, 0.86, 0.855, 0.85, 0.845, 0.84, 0.835, 0.83])

# Losses flatten out high; training accuracy never passes 61%.
WEAK_LOSS = [1.6, 1.3, 1.15, 1.08, 1.05, 1.03, 1.02, 1.015, 1.01, 1.008, 1.006, 1.005]
WEAK_ACC = [0.30, 0.40, 0.48, 0.53, 0.56, 0.58, 0.59, 0.60, 0.60, 0.605, 0.61, 0.61]
WEAK = run(WEAK_LOSS, [loss + 0.05 for loss in WEAK_LOSS], WEAK_ACC, [acc - 0.05 for acc in WEAK_ACC])

# Both losses fall in a straight line to the last epoch.
LINEAR = run([2.0 - 0.15 * i for i in range(10)], [2.1 - 0.14 * i for i in range(10)],
             [0.30 + 0.05 * i for i in range(10)], [0.28 + 0.05 * i for i in range(10)])

# Training loss bottoms out at epoch 4 (0.7), then climbs past where it started.
EXPLODING = run([2.0, 1.2, 0.8, 0.7, 0.9, 1.6, 2.5, 4.0])

# An exponential decay to a floor, no validation images: train accuracy 98% - 50% * e^(-i/3).
NO_VAL = run([0.2 + 2 * math.exp(-i / 3) for i in range(20)],
             train_acc=[round(0.98 - 0.5 * math.exp(-i / 3), 3) for i in range(20)])


@pytest.mark.parametrize("epochs, verdict, from_epoch, plateau_epoch, best_epoch", [
    (GOOD, "good fit", None, 7, 10),
    (OVERFIT, "overfitting", 7, 5, 6),
    (WEAK, "underfitting", None, 8, 12),
    (LINEAR, "underfitting", None, None, 10),
    (EXPLODING, "divergence", 5, None, 4),
    (NO_VAL, "good fit", None, 13, 20),
    (GOOD[:2], "too short", None, None, 2),
    (GOOD[:1], "too short", None, None, 1),
    ([], "too short", None, None, None),
], ids=["good", "overfit", "low-train-acc", "still-improving", "exploding", "no-val", "two", "one", "none"])
def test_verdicts(epochs, verdict, from_epoch, plateau_epoch, best_epoch):
    result = diagnose(epochs)
    assert list(result) == ["verdict", "from_epoch", "plateau_epoch", "best_epoch", "detail"]
    assert (result["verdict"], result["from_epoch"], result["plateau_epoch"], result["best_epoch"]) == (
        verdict, from_epoch, plateau_epoch, best_epoch)
    assert result["detail"] and "\n" not in result["detail"]


@pytest.mark.parametrize("epochs, detail", [
    (GOOD, "validation accuracy reached 89.0% at epoch 7, within one point of its best, 90.0%"),
    (OVERFIT, "validation loss rose from 0.55 at epoch 6 to 0.79 at epoch 12 while training loss "
              "fell from 0.35 to 0.08"),
    (WEAK, "training accuracy peaked at 61.0% at epoch 11, below 80.0%: the model does not fit even "
           "its training data; try a bigger model, a higher learning rate or cleaner labels"),
    (LINEAR, "still improving at the last epoch: train longer (training loss fell from 0.95 to 0.65 "
             "and validation loss from 1.12 to 0.84 over the last 2 epochs)"),
    (EXPLODING, "training loss rose from its minimum 0.7 at epoch 4 to 4 at epoch 8, above the 2 it "
                "started at: try a lower learning rate"),
    (NO_VAL, "training accuracy reached 97.1% at epoch 13, within one point of its best, 97.9%"),
    (GOOD[:2], "only 2 epochs recorded: at least 3 are needed to read a trend"),
    (GOOD[:1], "only 1 epoch recorded: at least 3 are needed to read a trend"),
], ids=["good", "overfit", "low-train-acc", "still-improving", "exploding", "no-val", "two", "one"])
def test_detail_gives_the_numbers(epochs, detail):
    assert diagnose(epochs)["detail"] == detail


@pytest.mark.parametrize("key, epoch, value, name", [
    ("train_loss", 5, NAN, "training loss became nan at epoch 5"),
    ("train_loss", 1, INF, "training loss became inf at epoch 1"),
    ("val_loss", 3, INF, "validation loss became inf at epoch 3"),
    ("val_loss", 9, -INF, "validation loss became -inf at epoch 9"),
])
def test_non_finite_loss_is_divergence_from_its_epoch(key, epoch, value, name):
    result = diagnose(with_values(GOOD, key, {epoch: value}))
    assert (result["verdict"], result["from_epoch"]) == ("divergence", epoch)
    assert result["detail"] == f"{name} (learning rate 0.001): try a lower learning rate"


def test_the_first_non_finite_epoch_is_reported():
    epochs = with_values(with_values(GOOD, "val_loss", {6: NAN}), "train_loss", {8: NAN})
    assert diagnose(epochs)["from_epoch"] == 6


def test_nan_wins_over_too_short():
    assert diagnose(run([2.3, NAN]))["verdict"] == "divergence"


def test_nan_in_accuracy_is_skipped_not_divergence():
    result = diagnose(with_values(GOOD, "val_acc", {10: NAN}))
    assert (result["verdict"], result["best_epoch"]) == ("good fit", 9)


@pytest.mark.parametrize("train_loss, verdict, from_epoch", [
    ([2.0, 1.2, 0.8, 0.7, 0.9, 1.6, 2.5, 4.0], "divergence", 5),
    ([2.0, 1.0, 0.5, 0.4, 0.3, 5.0], "divergence", 6),
    # Above twice the minimum but below the first epoch's loss: unstable, not exploding.
    ([2.0, 1.2, 0.8, 0.7, 0.9, 1.2, 1.5, 1.5], "good fit", None),
    # Back above the start but not twice the minimum.
    ([1.0, 0.9, 0.8, 0.7, 0.9, 1.2, 1.3, 1.35], "good fit", None),
])
def test_exploding_training_loss(train_loss, verdict, from_epoch):
    result = diagnose(run(train_loss))
    assert (result["verdict"], result["from_epoch"]) == (verdict, from_epoch)


def test_exploding_wins_over_overfitting():
    epochs = with_values(OVERFIT, "train_loss", {11: 2.5, 12: 3.0})
    result = diagnose(epochs)
    assert (result["verdict"], result["from_epoch"]) == ("divergence", 11)


@pytest.mark.parametrize("val_loss, kwargs, verdict", [
    # Only one epoch after the minimum: too early to call.
    ([2.1, 1.3, 0.9, 0.7, 0.6, 0.55, 0.54, 0.53, 0.52, 0.51, 0.50, 0.70], {}, "good fit"),
    # Exactly two epochs after the minimum is enough.
    ([2.1, 1.3, 0.9, 0.7, 0.6, 0.55, 0.54, 0.53, 0.52, 0.50, 0.60, 0.70], {}, "overfitting"),
    # A 6% rise is under the default 10%, over a 5% threshold.
    ([2.1, 1.3, 0.9, 0.7, 0.6, 0.50, 0.51, 0.52, 0.52, 0.53, 0.53, 0.53], {}, "good fit"),
    ([2.1, 1.3, 0.9, 0.7, 0.6, 0.50, 0.51, 0.52, 0.52, 0.53, 0.53, 0.53], {"rise": 0.05}, "overfitting"),
    # A spike that comes back down by the end is noise.
    ([2.1, 1.3, 0.9, 0.7, 0.6, 0.55, 0.90, 0.70, 0.58, 0.56, 0.56, 0.56], {}, "good fit"),
    # Near zero, a doubling is noise (benchmarks/sweep.py's pretrained run at lr 1e-3): 0.0009 -> 0.002.
    ([2.1, 0.3, 0.05, 0.01, 0.003, 0.0009, 0.002, 0.001, 0.002, 0.001, 0.002, 0.002], {}, "good fit"),
    # ... while a rise of 0.02 from there is not.
    ([2.1, 0.3, 0.05, 0.01, 0.003, 0.0009, 0.002, 0.005, 0.01, 0.015, 0.02, 0.021], {}, "overfitting"),
], ids=["one-after", "two-after", "small-rise", "small-rise-low-threshold", "spike", "near-zero", "near-zero-rise"])
def test_overfitting_thresholds(val_loss, kwargs, verdict):
    epochs = with_values(OVERFIT, "val_loss", dict(enumerate(val_loss, start=1)))
    assert diagnose(epochs, **kwargs)["verdict"] == verdict


def test_overfitting_needs_training_loss_to_keep_falling():
    flat = with_values(OVERFIT, "train_loss", {e: 0.35 for e in range(6, 13)})
    assert diagnose(flat)["verdict"] == "good fit"


def test_overfitting_wins_over_low_training_accuracy():
    low = with_values(OVERFIT, "train_acc", {e: 0.5 for e in range(1, 13)})
    assert diagnose(low)["verdict"] == "overfitting"


def test_overfitting_from_epoch_follows_recorded_epochs():
    # A resumed run can skip epoch numbers; from_epoch is the next one recorded.
    epochs = [{**row, "epoch": row["epoch"] * 2} for row in OVERFIT]
    assert diagnose(epochs)["from_epoch"] == 14


@pytest.mark.parametrize("min_train_acc, verdict", [(0.8, "underfitting"), (0.6, "good fit")])
def test_min_train_acc(min_train_acc, verdict):
    assert diagnose(WEAK, min_train_acc=min_train_acc)["verdict"] == verdict


def test_still_improving_wins_over_low_accuracy():
    assert "train longer" in diagnose(with_values(LINEAR, "train_acc", {10: 0.5}))["detail"]


def test_still_improving_needs_validation_loss_falling_too():
    # Training loss keeps falling but validation loss has flattened: not underfitting.
    flat_val = with_values(LINEAR, "val_loss", {e: 0.9 for e in range(6, 11)})
    flat_val = with_values(flat_val, "train_acc", {10: 0.95})
    assert diagnose(flat_val)["verdict"] == "good fit"


@pytest.mark.parametrize("epochs, verdict", [
    (run([2.0 - 0.15 * i for i in range(10)]), "underfitting"),
    (run([2.0, 1.0, 0.6, 0.5, 0.45, 0.44, 0.44, 0.44], train_acc=[0.5] * 8), "underfitting"),
    (run([2.0, 1.0, 0.6, 0.5, 0.45, 0.44, 0.44, 0.44]), "good fit"),
], ids=["still-improving", "low-acc", "settled"])
def test_no_validation_run(epochs, verdict):
    assert diagnose(epochs)["verdict"] == verdict


def test_no_validation_best_epoch_is_lowest_train_loss():
    epochs = run([2.0, 1.0, 0.6, 0.5, 0.45, 0.44, 0.43, 0.44])
    assert diagnose(epochs)["best_epoch"] == 7


def test_best_epoch_ties_go_to_lower_val_loss():
    epochs = with_values(GOOD, "val_loss", {9: 0.40})
    assert diagnose(epochs)["best_epoch"] == 9


def test_good_fit_without_any_accuracy():
    epochs = [{**row, "train_acc": None, "val_acc": None} for row in GOOD]
    result = diagnose(epochs)
    assert (result["verdict"], result["plateau_epoch"], result["best_epoch"]) == ("good fit", None, 10)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("epochs", [
    GOOD, NO_VAL, GOOD[:1], with_values(GOOD, "train_loss", {4: NAN, 5: INF}),
    [{**row, "train_acc": None, "val_acc": None} for row in GOOD],
], ids=["good", "no-val", "one", "nan", "no-accuracy"])
def test_plot_png_writes_a_png(tmp_path, epochs):
    path = plot_png(epochs, tmp_path / "plots" / "curves.png", title="run 3: resnet18")
    assert path == tmp_path / "plots" / "curves.png"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_plot_png_closes_its_figure(tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plot_png(GOOD, str(tmp_path / "a.png"))
    assert len(plt.get_fignums()) == before


def test_plot_png_refuses_no_epochs(tmp_path):
    with pytest.raises(InvalidInput, match="no epochs to plot"):
        plot_png([], tmp_path / "a.png")


@pytest.fixture
def drawn():
    """``drawn(epochs, **kw)``: the curves figure, rendered (so tick labels exist); closed after."""
    import matplotlib.pyplot as plt

    figures = []

    def draw(epochs, **kw):
        fig = figure(epochs, **kw)
        fig.canvas.draw()
        figures.append(fig)
        return fig

    yield draw
    for fig in figures:
        plt.close(fig)


@pytest.mark.parametrize("epochs", [GOOD[:1], GOOD[:2], GOOD[:3], GOOD, NO_VAL],
                         ids=["one", "two", "three", "ten", "twenty"])
def test_the_epoch_axis_has_whole_epochs_only(drawn, epochs):
    from matplotlib.ticker import MaxNLocator

    for ax in drawn(epochs).axes:
        assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
        low, high = ax.get_xlim()
        shown = [t.get_position()[0] for t in ax.get_xticklabels() if low <= t.get_position()[0] <= high]
        assert shown and all(float(x).is_integer() for x in shown), shown
        assert all(t.get_text().lstrip("−-").isdigit() for t in ax.get_xticklabels() if t.get_text())


@pytest.mark.parametrize("epochs, title, heading", [
    (GOOD, "run 3: resnet18", "run 3: resnet18: good fit"),
    (OVERFIT, None, "Diagnosis: overfitting"),
    (GOOD[:2], "short", "short: too short"),
], ids=["good", "overfit-untitled", "too-short"])
def test_the_diagnosis_is_written_on_the_picture(drawn, epochs, title, heading):
    fig = drawn(epochs, title=title)
    written = [t.get_text() for t in fig.texts]
    assert fig._suptitle.get_text() == heading
    assert [" ".join(t.split()) for t in written if t != heading] == [diagnose(epochs)["detail"]]
    # The box lies below the panels, not over them.
    box = next(t for t in fig.texts if t is not fig._suptitle).get_window_extent()
    assert all(box.y1 < ax.get_tightbbox().y0 for ax in fig.axes)


def test_plot_png_draws_a_given_diagnosis(tmp_path, drawn):
    given = {"verdict": "overfitting", "detail": "as the caller says"}
    assert "as the caller says" in [t.get_text() for t in drawn(GOOD, diagnosis=given).texts]


def plot_rows(chart: str) -> list[str]:
    """The plot area's rows: everything between the legend and the x-axis."""
    return chart.splitlines()[1:-2]


@pytest.mark.parametrize("epochs", [
    GOOD, OVERFIT, NO_VAL, GOOD[:1], EXPLODING,
    with_values(GOOD, "val_loss", {3: NAN, 4: None}),
    run([1.0 + math.sin(i / 10) for i in range(500)], [1.1 + math.cos(i / 10) for i in range(500)]),
], ids=["good", "overfit", "no-val", "one", "exploding", "nan-and-none", "500-epochs"])
@pytest.mark.parametrize("width, height", [(60, 12), (MIN_CHART_WIDTH, 2), (100, 5)])
def test_terminal_chart_shape(epochs, width, height):
    chart = terminal_chart(epochs, width=width, height=height)
    lines = chart.splitlines()
    assert len(lines) == height + 3
    assert max(map(len, lines)) <= width
    assert "\x1b" not in chart
    assert set("".join(row.split("|", 1)[1] for row in plot_rows(chart))) <= set(" tv*")


def test_terminal_chart_axes():
    chart = terminal_chart(OVERFIT, width=40, height=6)
    assert chart.splitlines() == [
        "loss: t train, v val, * both",
        " 2.1 |*",
        "     |",
        "     |   *",
        "     |      *  v                 v  v  v",
        "     |         t  *  *  v  v  v",
        "0.08 |                  t  t  t  t  t  t",
        "     +----------------------------------",
        "      1                               12",
    ]


def test_terminal_chart_marks():
    rows = plot_rows(terminal_chart(GOOD))
    cells = "".join(row.split("|", 1)[1] for row in rows)
    assert {"t", "v"} <= set(cells)
    # Identical curves land on the same cells.
    same = run([2.0, 1.0, 0.5], [2.0, 1.0, 0.5])
    cells = "".join(row.split("|", 1)[1] for row in plot_rows(terminal_chart(same)))
    assert cells.replace(" ", "") == "***"


def test_terminal_chart_without_validation_has_no_v():
    chart = terminal_chart(NO_VAL)
    assert chart.splitlines()[0] == "loss: t train"
    assert "v" not in "".join(plot_rows(chart))


def test_terminal_chart_one_epoch():
    lines = terminal_chart(run([0.7]), width=30, height=4).splitlines()
    assert lines[1].startswith("0.7 |") and lines[4].startswith("0.7 |")
    assert "t" in "".join(lines[1:5])
    assert lines[-1].strip() == "1"


def test_terminal_chart_skips_nan_and_none():
    epochs = run([2.0, NAN, 1.0, INF, 0.5], [4.0, None, 3.0, NAN, 2.5])
    chart = terminal_chart(epochs, width=30, height=9)
    cells = "".join(row.split("|", 1)[1] for row in plot_rows(chart))
    assert sorted(cells.replace(" ", "")) == ["t", "t", "t", "v", "v", "v"]
    assert chart.splitlines()[-1].split() == ["1", "5"]


def test_terminal_chart_resamples_long_runs():
    epochs = run([3.0 - i / 1000 for i in range(1000)])
    rows = plot_rows(terminal_chart(epochs, width=60, height=10))
    cells = "".join(row.split("|", 1)[1] for row in rows)
    # Labels "3" and "2" leave 57 columns: one averaged point in each.
    assert cells.count("t") == 57
    assert terminal_chart(epochs).splitlines()[-1].split() == ["1", "1000"]


@pytest.mark.parametrize("epochs", [[], run([NAN, INF])], ids=["empty", "all-nan"])
def test_terminal_chart_with_nothing_to_draw(epochs):
    assert terminal_chart(epochs) == "no finite loss to chart"


@pytest.mark.parametrize("width, height", [(MIN_CHART_WIDTH - 1, 12), (60, 1)])
def test_terminal_chart_refuses_tiny_sizes(width, height):
    with pytest.raises(InvalidInput, match=f"got width {width} and height {height}"):
        terminal_chart(GOOD, width=width, height=height)


# -- early stopping while a run trains (curves.Progress) ---------------------------------------------

# Recorded by benchmarks/sweep.py (RESULTS.md, 2026-11-30 issue 23), views set, Lite0 at 64 px:
# (val_loss, val_acc) per epoch. From scratch at lr 1e-4 the accuracy is noise (best 0.091 at
# epoch 9) while the loss keeps falling; pretrained at lr 1e-2 reaches 1.000 at epoch 18, then
# its near-zero loss only wanders.
SCRATCH_1E4 = [(4.116, 0.029), (4.003, 0.047), (3.992, 0.05), (3.93, 0.047), (3.836, 0.044), (3.837, 0.053),
               (3.776, 0.056), (3.753, 0.059), (3.688, 0.091), (3.662, 0.062), (3.655, 0.047), (3.618, 0.082),
               (3.573, 0.088), (3.584, 0.062)]
PRETRAINED_1E2 = [(7.311, 0.456), (1.727, 0.729), (0.767, 0.809), (0.404, 0.894), (0.256, 0.918), (0.204, 0.941),
                  (0.334, 0.888), (0.166, 0.95), (0.284, 0.897), (0.185, 0.938), (0.127, 0.965), (0.084, 0.979),
                  (0.116, 0.979), (0.098, 0.968), (0.082, 0.968), (0.041, 0.988), (0.065, 0.976), (0.011, 1.0),
                  (0.03, 0.991), (0.016, 0.994), (0.013, 0.994), (0.012, 0.997), (0.012, 0.997)]


def _stop_epoch(curve, patience=5, **kwargs):
    """The epoch a run with ``patience`` stops at (None: it would go on), and its Progress."""
    prog = Progress()
    for epoch, (loss, acc) in enumerate(curve, start=1):
        prog.step(epoch, acc, loss, **kwargs)
        if prog.stalled(patience):
            return epoch, prog
    return None, prog


def test_a_run_whose_validation_loss_still_falls_goes_on_at_a_noisy_accuracy():
    # accuracy alone stopped it at epoch 14 (five epochs after its best, 0.091 at epoch 9)
    stop, prog = _stop_epoch(SCRATCH_1E4)
    assert stop is None and prog.best_epoch == 9 and prog.best_acc == 0.091
    assert prog.lowest_loss == 3.573 and prog.bad_epochs == 1


def test_a_run_at_its_best_stops_when_its_loss_only_wanders_near_zero():
    stop, prog = _stop_epoch(PRETRAINED_1E2)
    assert (stop, prog.best_epoch, prog.best_acc) == (23, 18, 1.0)


def test_a_rising_loss_at_a_flat_accuracy_stops_after_patience():
    curve = [(2.0, 0.5), (1.5, 0.6), (1.6, 0.6), (1.7, 0.55), (1.9, 0.6)]
    assert _stop_epoch(curve, patience=3)[0] == 5
    assert _stop_epoch(curve, patience=3)[1].best_epoch == 2


def test_a_loss_falling_by_less_than_min_rise_is_no_progress():
    curve = [(1.0, 0.5)] + [(1.0 - (i + 1) * MIN_RISE / 4, 0.5) for i in range(3)]
    stop, prog = _stop_epoch(curve, patience=3)
    # each epoch ties on accuracy with a lower loss, so it is the best, yet none is progress for the lowest loss
    assert prog.best_epoch == 4 and prog.lowest_loss == 1.0 and stop is None
    # the falls add up: a lower loss by MIN_RISE in all counts
    prog.step(5, 0.4, 1.0 - MIN_RISE * 1.5)
    assert prog.lowest_loss == 1.0 - MIN_RISE * 1.5 and prog.best_epoch == 4


def test_without_validation_the_training_loss_decides():
    stop, prog = _stop_epoch([(1.0, None), (0.8, None), (0.9, None), (0.95, None)], patience=2)
    assert (stop, prog.best_epoch, prog.best_acc, prog.best_loss) == (4, 2, -1.0, 0.8)


def test_a_final_fit_keeps_every_epoch_and_a_nan_loss_is_never_the_lowest():
    prog = Progress()
    for epoch, (loss, acc) in enumerate([(1.0, 0.9), (2.0, 0.5), (math.nan, 0.4)], start=1):
        assert prog.step(epoch, acc, loss, keep=True)
    assert (prog.best_epoch, prog.best_loss, prog.lowest_loss) == (3, math.inf, 1.0)
