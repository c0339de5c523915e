"""Training: a timm model on a split build, from scratch, from weights, or warm-started from a run.

``train`` creates the run, ``resume`` continues one; both go through ``_fit``, a flat loop in
the nanoGPT manner: an epoch of AdamW steps with a warm-up-then-cosine learning rate, a
validation pass, one epoch row in the library, ``last.pt`` always and ``best.pt`` when
validation improved, and early stopping after ``patience`` epochs without progress (neither a
better accuracy nor a lower loss: ``curves.Progress``).

A warm start keeps every weight of the parent's model except its classifier, which
``reset_classifier`` replaces with a fresh head sized for the new build's classes. Under
``torchrun`` the same loop runs with DistributedDataParallel (gloo on CPU, nccl on GPU); rank 0
alone writes to the library and to disk.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from sqlalchemy import select

from curator import checkpoints, curves, weights
from curator.data import Examples, augment, normalise, shard
from curator.devices import Dist, init_process_group, pick_device
from curator.errors import ConflictingOptions, InvalidInput, NotFound
from curator.library import Library
from curator.library.models import ACTIVE, TRAIN_PURPOSE, Image, Run, RunEpoch, SplitMember, utcnow
from curator.locations import readable_paths
from curator.runs import find_run, run_folder, summary
from curator.splits import get_build

CHECKPOINT_FORMAT = checkpoints.FORMAT
EPOCHS, LR = 60, 1e-3
# Fine-tuning defaults, measured with benchmarks/warm_start.py: with the full rate and a random
# head a warm start shook the inherited features and ended below scratch; one head-only epoch at
# 0.3x the rate did not (benchmarks/RESULTS.md, "training, warm start and data loading").
WARM_LR, WARM_HEAD_EPOCHS = 3e-4, 1


@dataclass
class TrainConfig:
    """Every option of a run; stored with it, so ``--resume`` needs nothing else."""

    model: str | None = None  # resnet18, or the parent's model when warm-starting
    img_size: int = 128
    epochs: int = EPOCHS  # at most; also the length of the cosine decay
    patience: int = 8
    lr: float | None = None  # LR, or WARM_LR when warm-starting
    weight_decay: float = 0.05
    batch_size: int = 64
    warmup_epochs: float = 1.0
    head_epochs: int | None = None  # head-only epochs first: 0, or WARM_HEAD_EPOCHS when warm-starting
    augment: bool = True
    flip: bool = True
    rotate: float = 10.0
    zoom: float = 0.1
    pretrained: bool = False
    weights: str | None = None
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    cache_mib: int = 2048  # decode the build once when it fits; stream it otherwise
    final: bool = False  # train on train + val for exactly `epochs` (curator.final): val is not held out
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, options: dict) -> TrainConfig:
        """The options of ``asdict(cfg)`` (a run's row or a checkpoint's ``config``); names this
        version does not know are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def check_start(self, *, warm: bool = False) -> None:
        """One start only, else ConflictingOptions: timm's pretrained weights, a file, or (``warm``) a run's."""
        if self.pretrained and self.weights:
            raise ConflictingOptions("--pretrained and --weights both choose the starting weights: give one")
        if warm and (self.pretrained or self.weights):
            raise ConflictingOptions("--warm-start starts from a run's weights: leave out --pretrained/--weights")


# -- what to train on ------------------------------------------------------------------------


def split_examples(lib: Library, build_name: str, split: str, size: int, *, workers=None) -> Examples:
    """A build's images of one split, with labels as indices into the build's class list; each
    from its readable path (``curator.locations``), those with none left out and counted."""
    with lib.session() as s:
        build = get_build(s, build_name)
        index = {c: i for i, c in enumerate(json.loads(build.classes))}
        names = _class_names(s)
        rows = s.execute(
            select(SplitMember.image_id, Image.class_id)
            .join(Image, Image.id == SplitMember.image_id)
            .where(SplitMember.build_id == build.id, SplitMember.split == split, Image.status == ACTIVE)
            .order_by(SplitMember.image_id)
        ).all()
        labels = {i: index.get(names.get(c), -1) for i, c in rows}
        labels = {i: y for i, y in labels.items() if y >= 0}  # relabelled out of the build since
        paths, missing = readable_paths(s, list(labels))
    keep = [i for i in labels if i in paths]
    return Examples([paths[i] for i in keep], torch.tensor([labels[i] for i in keep], dtype=torch.long),
                    size, workers=workers, missing=len(missing))


def _examples(lib: Library, build_name: str, cfg: TrainConfig) -> tuple[Examples, Examples]:
    """The build's readable train and val images; a one-line error, before any run starts,
    when no training image can be read."""
    train_set = split_examples(lib, build_name, "train", cfg.img_size, workers=cfg.workers)
    val_set = split_examples(lib, build_name, "val", cfg.img_size, workers=cfg.workers)
    if cfg.final:  # the validation images train too; their curve is kept, but it is not held out
        train_set = Examples(train_set.paths + val_set.paths, torch.cat([train_set.labels, val_set.labels]),
                             cfg.img_size, workers=cfg.workers, missing=train_set.missing + val_set.missing)
    if not train_set.paths and train_set.missing:
        raise NotFound(f"no training image of build {build_name} could be read: {train_set.missing} files missing;"
                       " run `curator relocate OLD NEW` if their folder moved, or import them again")
    if not train_set.paths:
        raise InvalidInput(f"split build {build_name} has no training images")
    return train_set, val_set


def _class_names(s) -> dict[int, str]:
    from curator.library.models import LabelClass

    return dict(s.execute(select(LabelClass.id, LabelClass.name)).all())


# -- the model ---------------------------------------------------------------------------------


def create_model(cfg: TrainConfig, num_classes: int, parent: dict | None = None):
    """A timm model with a head of ``num_classes``: warm-started, from a weights file, or fresh (one of them)."""
    import timm

    cfg.check_start(warm=parent is not None)
    if parent is not None:
        model = checkpoints.build_model(parent)
        model.reset_classifier(num_classes)
        return model
    try:
        if cfg.weights:
            return weights.create_model(cfg.model, weights.resolve(cfg.weights, cfg.model), num_classes)
        return timm.create_model(cfg.model, pretrained=cfg.pretrained, num_classes=num_classes)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise InvalidInput(f"unknown timm model {cfg.model!r}: see timm.list_models()") from None
        raise InvalidInput(f"cannot load weights for {cfg.model}: {str(e).splitlines()[0]}") from None


def lr_at(step: int, *, total: int, warmup: int, base: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to 1% of ``base`` at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


# -- runs ---------------------------------------------------------------------------------------


def _unique_name(s, wanted: str) -> str:
    taken = set(s.scalars(select(Run.name).where(Run.name.like(f"{wanted}%"))))
    if wanted not in taken:
        return wanted
    return next(f"{wanted}-{i}" for i in range(2, len(taken) + 3) if f"{wanted}-{i}" not in taken)


def _start_run(lib: Library, build_name: str, cfg: TrainConfig, *, name, warm_start, throwaway, device,
               purpose=TRAIN_PURPOSE) -> tuple[Run, dict | None]:
    with lib.session() as s:
        build = get_build(s, build_name)
        classes = json.loads(build.classes)
        if not classes:
            raise InvalidInput(f"split build {build_name} has no classes: lower --min-count in `curator build-splits`")
        parent, parent_ckpt = None, None
        if warm_start:
            parent = find_run(s, warm_start)
            parent_ckpt = checkpoints.load(run_folder(lib, parent) / "best.pt")
            if cfg.model and cfg.model != parent_ckpt["model"]:
                raise InvalidInput(f"--model {cfg.model} differs from {parent.name}'s {parent_ckpt['model']}:"
                                   " a warm start keeps the parent's model (leave out --model)")
            cfg.model = parent_ckpt["model"]
        run_name = _unique_name(s, name or f"{cfg.model}-{build.name}")
        relative = Path("runs") / run_name  # relative to the library's folder, which may move
        folder = lib.folder / relative
        run = Run(name=run_name, build_id=build.id, parent_id=parent.id if parent else None, model=cfg.model,
                  params=json.dumps(asdict(cfg)), classes=json.dumps(classes), throwaway=throwaway,
                  folder=relative.as_posix(), device=str(device), world_size=Dist.from_env().world,
                  purpose=purpose)
        s.add(run)
        s.flush()
        s.expunge(run)
    folder.mkdir(parents=True, exist_ok=True)
    return run, parent_ckpt


def _discard(lib: Library, run_name: str) -> None:
    """Remove a run that never started (its model could not be made) and its empty folder."""
    with lib.session() as s:
        run = s.scalar(select(Run).where(Run.name == run_name))
        folder = run_folder(lib, run)
        s.delete(run)
    with contextlib.suppress(OSError):
        folder.rmdir()


def train(lib: Library, splits: str, cfg: TrainConfig | None = None, *, name: str | None = None,
          warm_start: str | None = None, throwaway: bool = False, purpose: str = TRAIN_PURPOSE,
          on_start: Callable[[str, dict], None] | None = None, on_epoch: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] = lambda: False) -> dict:
    """Train a new run on split build ``splits``.

    Args:
        warm_start: a run (name, id or ``latest``) whose weights, all but the classifier, start
            this one; the model name follows the parent's.
        on_start: called with the run's name and options once it exists (rank 0 only).
        on_epoch: called with each epoch's row (rank 0 only).
        should_stop: polled between batches; True ends the run as ``interrupted`` (resumable).
        purpose: ``train``, or a helper purpose (``suspects``): a helper run is never ``latest``.

    Returns:
        The run's summary (see ``summary``).

    Raises:
        ConflictingOptions: more than one start chosen (``TrainConfig.check_start``), before anything runs.
    """
    cfg = with_defaults(cfg or TrainConfig(), warm=bool(warm_start))
    cfg.check_start(warm=bool(warm_start))
    sets = _examples(lib, splits, cfg)
    dist = Dist.from_env()
    device = pick_device(cfg.device)
    if dist.world > 1:
        init_process_group(device)
    run_name = None
    if dist.main:
        run, parent = _start_run(lib, splits, cfg, name=name, warm_start=warm_start, throwaway=throwaway, device=device,
                                 purpose=purpose)
        run_name = run.name
        if on_start:
            on_start(run_name, asdict(cfg))
    else:
        parent = checkpoints.load(_best_checkpoint(lib, warm_start)) if warm_start else None
    run_name = dist.broadcast(run_name)
    with lib.session() as s:
        classes = json.loads(get_build(s, splits).classes)
    torch.manual_seed(cfg.seed)  # the same seed gives the same starting head and weights
    try:
        model = create_model(cfg, len(classes), parent)
    except BaseException:
        if dist.main:  # nothing was trained: no run left 'running' behind the error
            _discard(lib, run_name)
        raise
    return _fit(lib, run_name, cfg, model, classes, sets, splits, device, dist, start_epoch=1, state=None,
                on_epoch=on_epoch, should_stop=should_stop)


def with_defaults(cfg: TrainConfig, *, warm: bool) -> TrainConfig:
    """``cfg`` with the options left unset filled in: the from-scratch schedule, or the
    fine-tuning one (gentler, head first) for a warm start, whose model is the parent's."""
    return replace(cfg, lr=cfg.lr if cfg.lr is not None else (WARM_LR if warm else LR),
                   head_epochs=cfg.head_epochs if cfg.head_epochs is not None else (WARM_HEAD_EPOCHS if warm else 0),
                   model=cfg.model if warm else cfg.model or "resnet18")


def _best_checkpoint(lib: Library, ref: str) -> Path:
    with lib.session() as s:
        return run_folder(lib, find_run(s, ref)) / "best.pt"


def resume(lib: Library, ref: str, *, on_start=None, on_epoch=None, should_stop=lambda: False) -> dict:
    """Continue an interrupted run from its last finished epoch, with the options it had."""
    dist = Dist.from_env()
    with lib.session() as s:
        run = find_run(s, ref)
        if run.status == "done":
            raise InvalidInput(f"run {run.name} already finished ({run.epochs_run} epochs): train a new one,"
                               f" e.g. `curator train --splits {run.build.name} --warm-start {run.name}`")
        options, name, build_name = json.loads(run.params or "{}"), run.name, run.build.name
        classes, folder = json.loads(run.classes), run_folder(lib, run)
    last = folder / "last.pt"
    if not last.is_file():
        raise NotFound(f"run {name} saved no epoch yet ({last} is missing): start it again with `curator train`")
    state = torch.load(last, map_location="cpu", weights_only=False)
    cfg = _resumed_options(name, options, state)
    sets = _examples(lib, build_name, cfg)
    device = pick_device(cfg.device)
    if dist.world > 1:
        init_process_group(device)
    model = checkpoints.build_model(state)
    if dist.main:
        with lib.session() as s:
            r = s.scalar(select(Run).where(Run.name == name))
            r.status, r.finished_at = "running", None
            s.execute(RunEpoch.__table__.delete().where(RunEpoch.run_id == r.id, RunEpoch.epoch > state["epoch"]))
            # A kill between saving last.pt and committing its epoch row leaves the row out:
            # the checkpoint carries it, so it is put back.
            s.merge(RunEpoch(run_id=r.id, **state["metrics"]))
            r.epochs_run = state["epoch"]
        if on_start:
            on_start(name, asdict(cfg))
    return _fit(lib, name, cfg, model, classes, sets, build_name, device, dist, start_epoch=state["epoch"] + 1,
                state=state, on_epoch=on_epoch, should_stop=should_stop)


def _resumed_options(name: str, options: dict, state: dict) -> TrainConfig:
    """The run's options: its library row's, else those its ``last.pt`` carries."""
    options = options or state.get("config")
    if not options:
        raise InvalidInput(f"run {name} has no stored options, nor has its last.pt: start it again with `curator train`")
    return TrainConfig.from_dict(options)


# -- the loop ---------------------------------------------------------------------------------


def _fit(lib, name, cfg, model, classes, sets, build_name, device, dist, *, start_epoch, state, on_epoch,
         should_stop) -> dict:
    torch.manual_seed(cfg.seed + start_epoch)
    dist.share_cores(device)
    data_cfg = _data_config(model, cfg)
    train_set, val_set = sets
    for ex in (train_set, val_set):
        if ex.nbytes <= cfg.cache_mib * 2**20:
            ex.cache()
    model.to(device)
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = _optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(shard(len(train_set.paths), seed=0, epoch=0, rank=dist.rank, world=dist.world,
                                          batch_size=cfg.batch_size)) / cfg.batch_size)
    total, warmup = steps_per_epoch * cfg.epochs, max(1, round(steps_per_epoch * cfg.warmup_epochs))
    prog = curves.Progress()
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        # a last.pt from before lowest_loss was kept: its best loss is the lowest it knew
        prog = curves.Progress(**{"lowest_loss": state["progress"]["best_loss"], **state["progress"]})
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + start_epoch)
    status, failure = "done", None
    epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        lr = lr_at((epoch - 1) * steps_per_epoch, total=total, warmup=warmup, base=cfg.lr)
        stats = _train_epoch(net, opt, train_set, cfg, data_cfg, device, dist, epoch, gen,
                             lambda step: lr_at((epoch - 1) * steps_per_epoch + step, total=total, warmup=warmup, base=cfg.lr),
                             should_stop)
        if stats is None:
            status, epoch = "interrupted", epoch - 1
            break
        if not math.isfinite(stats[0]):  # never an epoch row: its loss is not a number
            status, failure = "failed", _why_failed(name, epoch, stats[2], len(train_set.paths), cfg)
            epoch -= 1
            break
        val_loss, val_acc = _val_pass(model, val_set, cfg, data_cfg, device)
        seconds = time.perf_counter() - t0
        row = dict(epoch=epoch, train_loss=stats[0], train_acc=stats[1], val_loss=val_loss, val_acc=val_acc,
                   lr=lr, seconds=seconds, images_per_s=stats[2] / max(seconds, 1e-9))
        # A final fit keeps its last epoch: its validation images are training images.
        better = prog.step(epoch, val_acc if val_set.paths else None, val_loss if val_set.paths else stats[0],
                           keep=cfg.final)
        if dist.main:
            _save_epoch(lib, name, model, opt, cfg, classes, data_cfg, build_name, row, prog, better)
            if on_epoch:
                on_epoch(row)
        if prog.stalled(cfg.patience):
            break
        if should_stop():
            status = "interrupted" if epoch < cfg.epochs else "done"
            break
    if dist.main:
        _finish_run(lib, name, status, epoch, prog)
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()
    if failure:
        raise InvalidInput(failure)
    if not dist.main:
        return {"name": name, "rank": dist.rank}
    return summary(lib, name) | {"missing": train_set.missing + val_set.missing}


def _why_failed(name: str, epoch: int, read: int, images: int, cfg: TrainConfig) -> str:
    why = (f"none of its {images} training images could be read" if not read else
           f"the training loss is not a number; train again with a lower --lr (it was {cfg.lr:g})")
    return f"run {name} failed in epoch {epoch}: {why}"


def _optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with the classifier in its own group, so the body can wait while a new head learns."""
    head = {id(p) for p in model.get_classifier().parameters()}
    groups = [{"name": "body", "params": [p for p in model.parameters() if id(p) not in head]},
              {"name": "head", "params": [p for p in model.parameters() if id(p) in head]}]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _data_config(model, cfg: TrainConfig) -> dict:
    import timm.data

    dc = timm.data.resolve_model_data_config(model)
    return {"input_size": [3, cfg.img_size, cfg.img_size], "mean": list(dc["mean"]), "std": list(dc["std"]),
            "interpolation": "bilinear", "crop_pct": 1.0}


def _train_epoch(net, opt, train_set, cfg, data_cfg, device, dist, epoch, gen, lr_for, should_stop):
    """One pass over this rank's shard; returns (loss, accuracy, images) over all ranks, or None when stopped."""
    net.train()
    order = shard(len(train_set.paths), seed=cfg.seed, epoch=epoch, rank=dist.rank, world=dist.world, batch_size=cfg.batch_size)
    sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
    for step, (px, y, ok) in enumerate(train_set.batches(cfg.batch_size, order=order)):
        if should_stop():
            return None
        for group in opt.param_groups:
            group["lr"] = lr_for(step) * (group["name"] == "head" or epoch > cfg.head_epochs)
        x = normalise(px.to(device, non_blocking=True), data_cfg["mean"], data_cfg["std"])
        if cfg.augment:
            x = augment(x, flip=cfg.flip, rotate=cfg.rotate, zoom=cfg.zoom, generator=gen)
        y, ok = y.to(device), ok.to(device)
        logits = net(x)
        losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        loss = (losses * ok).sum() / ok.sum().clamp(min=1)  # an unreadable image weighs nothing
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n = ok.sum().item()
        sums += torch.tensor([loss.item() * n, ((logits.argmax(1) == y) & ok).sum().item(), n], dtype=torch.float64)
    if dist.world > 1:
        import torch.distributed as tdist

        tdist.all_reduce(sums)
    loss_sum, correct, n = sums.tolist()
    return (loss_sum / n if n else math.nan), (correct / n if n else 0.0), n


@torch.inference_mode()
def _val_pass(model, val_set, cfg, data_cfg, device) -> tuple[float | None, float | None]:
    if not val_set.paths:
        return None, None
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for px, y, ok in val_set.batches(cfg.batch_size * 2, order=range(len(val_set.paths))):
        x = normalise(px.to(device), data_cfg["mean"], data_cfg["std"])
        y, ok = y.to(device), ok.to(device)
        logits = model(x).float()
        losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        loss_sum += (losses * ok).sum().item()
        correct += ((logits.argmax(1) == y) & ok).sum().item()
        n += ok.sum().item()
    return (loss_sum / n, correct / n) if n else (None, None)


def _save_epoch(lib, name, model, opt, cfg, classes, data_cfg, build_name, row, prog, better) -> None:
    """Checkpoint first, then the epoch row: a row in the library always has its checkpoint."""
    with lib.session() as s:
        run = s.scalar(select(Run).where(Run.name == name))
        folder, parent = run_folder(lib, run), run.parent.name if run.parent else None
        ckpt = checkpoints.describe(model, model_name=cfg.model, classes=classes, data_config=data_cfg,
                                    epoch=row["epoch"], metrics=row, build=build_name, run=name, parent=parent,
                                    config=asdict(cfg))
        if better:
            checkpoints.save(ckpt, folder / "best.pt")
        checkpoints.save({**ckpt, "optimizer": opt.state_dict(), "progress": asdict(prog)}, folder / "last.pt")
        s.merge(RunEpoch(run_id=run.id, **row))
        run.epochs_run = row["epoch"]
        run.best_epoch = prog.best_epoch
        run.best_val_acc = prog.best_acc if prog.best_acc >= 0 else None
        run.best_val_loss = prog.best_loss if math.isfinite(prog.best_loss) else None


def _finish_run(lib, name, status, epoch, prog) -> None:
    with lib.session() as s:
        run = s.scalar(select(Run).where(Run.name == name))
        run.status = status
        run.finished_at = utcnow() if status != "interrupted" else None
