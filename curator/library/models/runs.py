"""Data-set versions and what is trained on them: split builds, runs, their epochs,
evaluations, predictions and per-class thresholds."""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import HELPER_PURPOSES, READABLE_ONLY, TRAIN_PURPOSE, Base, one_of, utcnow


class SplitBuild(Base):
    """A named, stored data-set version: its parameters, its classes and each image's split."""

    __tablename__ = "split_builds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    classes: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: the model head's order
    report: Mapped[str] = mapped_column(Text, default="{}")  # JSON: below cutoff, problems...
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("split_builds.id"))


class SplitMember(Base):
    """One image's split in one build."""

    __tablename__ = "split_members"

    build_id: Mapped[int] = mapped_column(
        ForeignKey("split_builds.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    split: Mapped[str] = mapped_column(String(20))

    __table_args__ = (
        CheckConstraint("split IN ('train', 'val', 'test', 'benchmark')", name="split"),
        Index("ix_split_members_build_split", "build_id", "split"),
    )


RUN_STATUSES = ("running", "done", "interrupted", "failed")


class Run(Base):
    """One training run: a timm model trained on a split build, maybe warm-started from a parent.

    The checkpoint on disk describes itself; this row is what lists, compares and promotes runs.
    """

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    build_id: Mapped[int] = mapped_column(ForeignKey("split_builds.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    model: Mapped[str] = mapped_column(String(200))
    params: Mapped[str] = mapped_column(Text, default="{}")  # JSON: every training option
    classes: Mapped[str] = mapped_column(Text, default="[]")  # JSON: the head's order
    throwaway: Mapped[bool] = mapped_column(default=False)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime)  # the newest is production
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    best_val_acc: Mapped[float | None] = mapped_column(Float)
    best_val_loss: Mapped[float | None] = mapped_column(Float)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    folder: Mapped[str] = mapped_column(Text)  # checkpoints and plots
    device: Mapped[str | None] = mapped_column(String(50))
    world_size: Mapped[int] = mapped_column(Integer, default=1)
    # `train`, or a helper (see HELPER_PURPOSES) that never counts as the latest run.
    purpose: Mapped[str] = mapped_column(String(20), default=TRAIN_PURPOSE, server_default=TRAIN_PURPOSE)

    build: Mapped[SplitBuild] = relationship()
    parent: Mapped[Run | None] = relationship(remote_side=[id])

    __table_args__ = (
        one_of("status", RUN_STATUSES),
        one_of("purpose", (TRAIN_PURPOSE, *HELPER_PURPOSES)),
    )


class RunEpoch(Base):
    """One epoch of a run's curves."""

    __tablename__ = "run_epochs"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    train_loss: Mapped[float] = mapped_column(Float)
    train_acc: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    val_acc: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    images_per_s: Mapped[float | None] = mapped_column(Float)


class Evaluation(Base):
    """A run's metrics on one split of its build, with how it compares to other runs."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    metrics: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    comparisons: Mapped[str] = mapped_column(Text, default="{}")  # JSON: vs parent, production


class Prediction(Base):
    """A run's top-k answer for one image (and its embedding); one row per run and image."""

    __tablename__ = "predictions"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    predicted: Mapped[str | None] = mapped_column(String(200))  # top-1 class; None: unreadable
    confidence: Mapped[float | None] = mapped_column(Float)
    top_k: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[class, confidence], ...]
    embedding: Mapped[builtins.bytes | None] = mapped_column(LargeBinary)  # float16 pre-logits
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_predictions_run_predicted", "run_id", "predicted", "confidence"),
        # Readable predictions only, in the orders find and coverage read them (0007).
        Index("ix_predictions_run_confidence", "run_id", "confidence", "image_id", **READABLE_ONLY),
        Index("ix_predictions_run_predicted_readable", "run_id", "predicted", "confidence", "image_id", **READABLE_ONLY),
        # a run's embeddings: count, sum of image ids and newest write from the index alone (0009)
        Index("ix_predictions_run_image_written", "run_id", "image_id", "created_at", **READABLE_ONLY),
    )


class Threshold(Base):
    """A run's confidence threshold for one class: below it, serving answers "not sure"."""

    __tablename__ = "thresholds"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    threshold: Mapped[float] = mapped_column(Float)
    target_precision: Mapped[float] = mapped_column(Float)
    precision: Mapped[float | None] = mapped_column(Float)  # on the data it was chosen from
    recall: Mapped[float | None] = mapped_column(Float)
    support: Mapped[int] = mapped_column(Integer, default=0)  # images predicted as the class
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
