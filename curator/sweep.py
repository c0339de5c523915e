"""A sweep: one throw-away helper run per combination of learning rate, batch size and start
(``scratch`` or ``pretrained``), then the runs side by side (``curator.compare``), a
parallel-coordinates plot and the setting the recipe's rule recommends.

Sweep runs have purpose ``sweep``: kept and listed (``curator runs --all``), never the latest
run or production. Each is named for its build and setting (``sweep-min40-lr0.001-bs64-scratch``),
so a re-run finds what is done and trains only what is missing: a finished run is skipped, an
interrupted one resumed, a failed one (its loss became NaN) kept as a result. Under ``torchrun``
each process trains its share of the combinations (``i % WORLD_SIZE == RANK``) on its own
device, each run alone (no DistributedDataParallel across them); rank 0 compares what is there.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from curator import compare
from curator.errors import InvalidInput
from curator.library import Library
from curator.library.models import SWEEP_PURPOSE

INITS = ("scratch", "pretrained")


def combinations(lrs: Sequence[float], batch_sizes: Sequence[int], inits: Sequence[str]) -> list[dict]:
    """Every setting, learning rate slowest-varying: ``[{"lr", "batch_size", "init"}]``."""
    if not lrs:
        raise InvalidInput("give one or more learning rates, e.g. --lr 1e-4,1e-3,1e-2")
    bad = [i for i in inits if i not in INITS]
    if bad:
        raise InvalidInput(f"--init {bad[0]}: use scratch, pretrained or both (scratch,pretrained)")
    if any(lr <= 0 for lr in lrs) or any(b < 1 for b in batch_sizes):
        raise InvalidInput("learning rates must be above 0 and batch sizes 1 or more")
    return [{"lr": lr, "batch_size": b, "init": i}
            for lr, b, i in itertools.product(dict.fromkeys(lrs), dict.fromkeys(batch_sizes), dict.fromkeys(inits))]


def run_name(build: str, setting: dict) -> str:
    return f"sweep-{build}-lr{setting['lr']:g}-bs{setting['batch_size']}-{setting['init']}"


def sweep(lib: Library, splits: str, base, *, lrs: Sequence[float], batch_sizes: Sequence[int] = (),
          inits: Sequence[str] = ("scratch",), png: str | Path | None = None,
          on_trial: Callable[[str, str], None] | None = None, on_epoch: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Train what is missing of the sweep, then compare its runs.

    Args:
        base: the ``train.TrainConfig`` every run starts from (model, epochs, image size...);
            ``pretrained`` or ``weights`` name what ``pretrained`` starts from (timm's hub or a
            file; neither: timm's hub).
        batch_sizes: default ``base.batch_size`` alone.
        inits: ``scratch``, ``pretrained`` or both.
        on_trial: called with (run name, what happens: train, resume, skip).

    Returns:
        ``compare.compare``'s answer for the sweep's runs (rank 0), plus ``settings`` (each with
        its run and status), ``parallel_png``, ``recommended`` (the preferred run's setting),
        ``pretrained_vs_scratch`` (when both starts ran) and ``stopped`` (a stop was asked).

    Raises:
        InvalidInput: bad settings, or a warm start asked for (a sweep starts fresh).
    """
    from curator import splits as splits_lib
    from curator import train as train_lib
    from curator.devices import Dist

    settings = combinations(lrs, batch_sizes or [base.batch_size], inits)
    with lib.session() as s:
        splits_lib.get_build(s, splits)  # a missing build: one line before any run starts
    dist = Dist.from_env()
    stopped = False
    for i, setting in enumerate(settings):
        setting["run"] = run_name(splits, setting)
        if i % dist.world != dist.rank or stopped:
            continue
        with _alone(dist):
            status = _train_one(lib, splits, _config(train_lib, base, setting, dist), setting["run"], on_trial,
                                on_epoch, should_stop)
        stopped = status == "interrupted"
    if not dist.main:
        return {"rank": dist.rank}
    return _report(lib, splits, settings, png) | {"stopped": stopped}


def _config(train_lib, base, setting: dict, dist):
    pretrained = setting["init"] == "pretrained"
    device = base.device
    if device == "auto" and dist.world > 1:
        import torch

        device = f"cuda:{os.environ.get('LOCAL_RANK', dist.rank)}" if torch.cuda.is_available() else "cpu"
    return replace(base, lr=setting["lr"], batch_size=setting["batch_size"], device=device,
                   pretrained=pretrained and not base.weights, weights=base.weights if pretrained else None)


@contextlib.contextmanager
def _alone(dist):
    """Each process of a torchrun sweep trains its own runs alone: no process group."""
    if dist.world == 1:
        yield
        return
    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE")}
    os.environ.update(RANK="0", WORLD_SIZE="1")
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ[k] = v


def _train_one(lib, splits, cfg, name, on_trial, on_epoch, should_stop) -> str:
    """Train, resume or skip one sweep run; returns its status."""
    from curator import runs as runs_lib
    from curator import train as train_lib
    from curator.errors import NotFound

    try:
        existing = runs_lib.summary(lib, name)
    except NotFound:
        existing = None
    if existing and existing["status"] not in ("done", "failed") and not (Path(existing["folder"]) / "last.pt").is_file():
        _forget(lib, name)  # killed before its first epoch ended: nothing to resume, so train it afresh
        existing = None
    if existing and existing["status"] in ("done", "failed"):
        if on_trial:
            on_trial(name, "skip")
        return existing["status"]
    if on_trial:
        on_trial(name, "resume" if existing else "train")
    try:
        if existing:
            result = train_lib.resume(lib, name, on_epoch=on_epoch, should_stop=should_stop)
        else:
            result = train_lib.train(lib, splits, cfg, name=name, throwaway=True, purpose=SWEEP_PURPOSE,
                                     on_epoch=on_epoch, should_stop=should_stop)
    except InvalidInput as e:
        if "failed in epoch" not in str(e):  # a diverged run is a result; anything else is an error
            raise
        return "failed"
    return result["status"]


def _forget(lib, name: str) -> None:
    """Remove a sweep run that saved no epoch (its row and folder), so its name can train again."""
    import shutil

    from sqlalchemy import delete

    from curator.library.models import Run
    from curator.runs import find_run, run_folder

    with lib.session() as s:
        folder = run_folder(lib, find_run(s, name))
        s.execute(delete(Run).where(Run.name == name))
        s.commit()
    shutil.rmtree(folder, ignore_errors=True)


def _report(lib: Library, splits: str, settings: list[dict], png) -> dict:
    from curator import runs as runs_lib
    from curator.errors import NotFound

    present = []
    for s in settings:
        try:
            s["status"] = runs_lib.summary(lib, s["run"])["status"]
            present.append(s)
        except NotFound:
            s["status"] = "missing"
    with_curves = [s for s in present if runs_lib.epochs(lib, s["run"])]
    if len(with_curves) < 2:
        return {"settings": settings, "runs": [], "preferred": None, "recommended": None, "png": None,
                "parallel_png": None, "pretrained_vs_scratch": None, "options": {}}
    folder = Path(runs_lib.summary(lib, with_curves[0]["run"])["folder"]).parent / f"sweep-{splits}"
    result = compare.compare(lib, [s["run"] for s in with_curves], png=png or folder / "curves.png")
    by_run = {r["name"]: r for r in result["runs"]}
    parallel = plot_parallel(with_curves, by_run, folder / "parallel.png")
    chosen = result["preferred"]["run"]
    return result | {"settings": settings, "parallel_png": str(parallel),
                     "recommended": next((s for s in settings if s["run"] == chosen), None),
                     "pretrained_vs_scratch": pretrained_vs_scratch(settings, by_run)}


def epochs_to(epochs: list[dict], accuracy: float) -> int | None:
    """The first epoch whose validation accuracy reaches ``accuracy`` (None: never)."""
    return next((r["epoch"] for r in epochs if r.get("val_acc") is not None and r["val_acc"] >= accuracy - 1e-9), None)


def pretrained_vs_scratch(settings: list[dict], by_run: dict[str, dict]) -> list[dict] | None:
    """For each learning rate and batch size run from both starts: the epochs each needed to
    reach the other's best validation accuracy, and each one's best."""
    pairs = []
    for s in settings:
        if s["init"] != "scratch":
            continue
        twin = next((t for t in settings if t["init"] == "pretrained" and t["lr"] == s["lr"]
                     and t["batch_size"] == s["batch_size"]), None)
        if twin is None or s["run"] not in by_run or twin["run"] not in by_run:
            continue
        a, b = by_run[s["run"]], by_run[twin["run"]]
        best_a = max((r["val_acc"] for r in a["epochs"] if r.get("val_acc") is not None), default=None)
        best_b = max((r["val_acc"] for r in b["epochs"] if r.get("val_acc") is not None), default=None)
        if best_a is None or best_b is None:
            continue
        pairs.append({"lr": s["lr"], "batch_size": s["batch_size"], "scratch_best": best_a, "pretrained_best": best_b,
                      "scratch_epochs_to_best": epochs_to(a["epochs"], best_a),
                      "pretrained_epochs_to_scratch_best": epochs_to(b["epochs"], best_a),
                      "scratch_epochs_to_pretrained_best": epochs_to(a["epochs"], best_b)})
    return pairs or None


def plot_parallel(settings: list[dict], by_run: dict[str, dict], path: Path) -> Path:
    """Parallel coordinates: learning rate (log), batch size, start, best validation loss and
    accuracy, one line a run, coloured by its best validation accuracy."""
    from curator import curves

    plt = curves.pyplot()
    axes = [("log10 lr", lambda s, r: math.log10(s["lr"])), ("batch size", lambda s, r: s["batch_size"]),
            ("start", lambda s, r: INITS.index(s["init"])),
            ("best val loss", lambda s, r: r["best_val_loss"]), ("best val acc", lambda s, r: r["best_val_acc"])]
    rows = [[f(s, by_run[s["run"]]) for _, f in axes] for s in settings]
    spans = [(min((v for v in c if v is not None), default=0), max((v for v in c if v is not None), default=1))
             for c in zip(*rows)]
    fig, ax = plt.subplots(figsize=(9, 5))
    for s, row in zip(settings, rows):
        ys = [math.nan if v is None else 0.5 if hi == lo else (v - lo) / (hi - lo) for v, (lo, hi) in zip(row, spans)]
        acc = by_run[s["run"]]["best_val_acc"]
        ax.plot(range(len(axes)), ys, marker="o", color=plt.get_cmap("viridis")(acc or 0.0),
                label=s["run"].split("-", 2)[-1])
    for k, (lo, hi) in enumerate(spans):
        ax.axvline(k, color="grey", linewidth=0.8)
        ax.text(k, -0.08, f"{lo:.3g}", ha="center", fontsize=8)
        ax.text(k, 1.04, f"{hi:.3g}", ha="center", fontsize=8)
    ax.set_xticks(range(len(axes)), [a for a, _ in axes])
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.1)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("sweep: settings against best validation loss and accuracy (colour: accuracy)")
    fig.tight_layout()
    return curves.save_png(fig, path)
