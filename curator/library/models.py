"""The library's tables, as SQLAlchemy 2 typed ORM classes.

The schema changes only through an Alembic migration in ``migrations/versions``;
``tests/test_migrations.py`` proves these models and the migrations agree.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Float,
    LargeBinary,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints let SQLite batch migrations find and alter them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Label states. `unknown` is a good image whose class nobody knows yet: kept, never trained on.
UNLABELLED, LABELLED, UNKNOWN = "unlabelled", "labelled", "unknown"
LABEL_STATES = (UNLABELLED, LABELLED, UNKNOWN)


def label_text(state: str, cls: str | None = None, sub: str | None = None) -> str:
    """A label as it is written everywhere: ``class``, ``class/sub``, or the state
    (``unknown``, ``unlabelled``) when the image is not labelled."""
    if state != LABELLED:
        return state
    return f"{cls}/{sub}" if sub else cls

# What a run is for. Helper runs (suspects' k-fold runs, sweep trials) are kept and listed but
# never count as the latest run (see curator.runs.find_run).
TRAIN_PURPOSE, SUSPECTS_PURPOSE, SWEEP_PURPOSE = "train", "suspects", "sweep"
HELPER_PURPOSES = (SUSPECTS_PURPOSE, SWEEP_PURPOSE)

ACTIVE, REJECTED = "active", "rejected"
FLAGS = ("staged", "synthetic", "benchmark")


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (SQLite stores naive timestamps; all of ours are UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    """A CHECK that ``column`` holds one of ``values``, named after the column."""
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ImportBatch(Base):
    """One run of ``curator import``: where it read, what it found, whether it finished."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    roots: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of the paths given
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON of the import options
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    added: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint("status IN ('running', 'done', 'interrupted')", name="status"),
    )


class LabelClass(Base):
    """A class a model can predict; may have sub-classes (``kangaroo`` -> ``adult``, ``joey``)."""

    __tablename__ = "classes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    subclasses: Mapped[list[Subclass]] = relationship(
        back_populates="parent", cascade="all, delete-orphan", order_by="Subclass.name"
    )


class Subclass(Base):
    """A sub-class of exactly one class; an image's sub-class must belong to its class."""

    __tablename__ = "subclasses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    parent: Mapped[LabelClass] = relationship(back_populates="subclasses")

    __table_args__ = (
        UniqueConstraint("class_id", "name", name="uq_subclasses_class_id_name"),
        # Target of the images' composite foreign key (subclass_id, class_id).
        UniqueConstraint("id", "class_id", name="uq_subclasses_id_class_id"),
    )


class Image(Base):
    """One distinct image (one sha256). Other paths with the same bytes are extra locations."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    phash: Mapped[int | None] = mapped_column(BigInteger)  # 64-bit pHash, stored signed
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(20))
    mode: Mapped[str | None] = mapped_column(String(20))
    bytes: Mapped[int] = mapped_column(BigInteger)
    exif_orientation: Mapped[int | None] = mapped_column(Integer)
    # Colour histogram on white (8 bins per channel, uint16): pHash is grey, this sees colour.
    color_sig: Mapped[builtins.bytes | None] = mapped_column(LargeBinary(48))  # `bytes` is a column
    # Crop-tolerant pHashes (0010, curator.crop_hash): 64-bit of inner crops, 256-bit for the check.
    crop_phashes: Mapped[builtins.bytes | None] = mapped_column(LargeBinary(16))
    fine_hashes: Mapped[builtins.bytes | None] = mapped_column(LargeBinary(96))
    path: Mapped[str] = mapped_column(Text)  # the first location it was imported from
    source: Mapped[str] = mapped_column(String(200))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    status: Mapped[str] = mapped_column(String(20), default=ACTIVE)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    label_state: Mapped[str] = mapped_column(String(20), default=UNLABELLED)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    subclass_id: Mapped[int | None] = mapped_column(Integer)
    staged: Mapped[bool] = mapped_column(default=False)
    synthetic: Mapped[bool] = mapped_column(default=False)
    benchmark: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str | None] = mapped_column(Text)
    dup_group_id: Mapped[int | None] = mapped_column(
        ForeignKey("duplicate_groups.id", ondelete="SET NULL"), index=True
    )

    label_class: Mapped[LabelClass | None] = relationship(foreign_keys=[class_id])
    subclass: Mapped[Subclass | None] = relationship(
        foreign_keys=[subclass_id], primaryjoin="Image.subclass_id == Subclass.id"
    )
    locations: Mapped[list[ImageLocation]] = relationship(
        back_populates="image", cascade="all, delete-orphan", order_by="ImageLocation.id"
    )

    __table_args__ = (
        ForeignKeyConstraint(
            ["subclass_id", "class_id"],
            ["subclasses.id", "subclasses.class_id"],
            name="fk_images_subclass_id_subclasses",
        ),
        one_of("status", (ACTIVE, REJECTED)),
        one_of("label_state", LABEL_STATES),
        CheckConstraint(
            "(label_state = 'labelled') = (class_id IS NOT NULL)", name="class_iff_labelled"
        ),
        CheckConstraint("subclass_id IS NULL OR class_id IS NOT NULL", name="subclass_needs_class"),
        Index("ix_images_phash", "phash"),
        Index("ix_images_class_subclass", "class_id", "subclass_id"),
        Index("ix_images_label_state", "label_state"),
        # Per-class counts (classes, coverage, find --low-count) and stats from the index alone (0007).
        Index("ix_images_label_class", "label_state", "class_id", "subclass_id", "status", "staged", "synthetic",
              "benchmark", "format", "bytes"),
    )

    @property
    def label(self) -> str:
        """The label as written everywhere: ``class``, ``class/sub``, ``unknown`` or ``unlabelled``."""
        if self.label_state != LABELLED:
            return self.label_state
        assert self.label_class is not None
        return label_text(LABELLED, self.label_class.name, self.subclass.name if self.subclass else None)


class ImageLocation(Base):
    """A path an image was found at. The same bytes at a second path add a location, not an image."""

    __tablename__ = "image_locations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    # The label this path's folders implied at import; differs from the image's label when the
    # same bytes were filed under two classes (a label conflict worth a look).
    folder_label: Mapped[str | None] = mapped_column(Text)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batches.id"))
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    image: Mapped[Image] = relationship(back_populates="locations")


class LabelEvent(Base):
    """One row of an image's history: every change of label, status, flag or note, never edited."""

    __tablename__ = "label_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(30))  # import, label, relabel, unknown, reject, ...
    field: Mapped[str] = mapped_column(String(20))  # label, status, staged, synthetic, benchmark, note
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(30))  # import, cli, fiftyone, model, ...
    actor: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[str | None] = mapped_column(Text)

    image: Mapped[Image] = relationship()

    __table_args__ = (Index("ix_label_events_image_id_at", "image_id", "at"),)


class DuplicateGroup(Base):
    """Images that are the same picture (same pixels, or near in pHash and colour).

    One member is canonical: real before staged/synthetic, then the largest, then the oldest.
    Images not in any group are unique.
    """

    __tablename__ = "duplicate_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    canonical_id: Mapped[int | None] = mapped_column(
        ForeignKey("images.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    canonical: Mapped[Image | None] = relationship(foreign_keys=[canonical_id], post_update=True)
    members: Mapped[list[Image]] = relationship(
        foreign_keys=[Image.dup_group_id], order_by="Image.id", viewonly=True
    )


class DuplicatePair(Base):
    """The evidence for a group: two images found to be duplicates, and how close they are."""

    __tablename__ = "duplicate_pairs"

    image_a: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    image_b: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # pixels, phash, embedding
    distance: Mapped[int] = mapped_column(Integer)  # pHash bits
    color_distance: Mapped[float | None] = mapped_column(Float)
    similarity: Mapped[float | None] = mapped_column(Float)  # cosine, for kind embedding (0009)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("dedup_runs.id"))

    __table_args__ = (CheckConstraint("image_a < image_b", name="ordered"),)


class DedupRun(Base):
    """One ``curator dedup``: its settings and the newest image it covered (for incremental runs)."""

    __tablename__ = "dedup_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    threshold: Mapped[int] = mapped_column(Integer)
    color_threshold: Mapped[float] = mapped_column(Float)
    last_image_id: Mapped[int] = mapped_column(Integer, default=0)
    compared: Mapped[int] = mapped_column(Integer, default=0)
    new_pairs: Mapped[int] = mapped_column(Integer, default=0)
    groups: Mapped[int] = mapped_column(Integer, default=0)
    embedder: Mapped[str | None] = mapped_column(String(200))  # --embeddings (0009)
    min_similarity: Mapped[float | None] = mapped_column(Float)
    detail_threshold: Mapped[int | None] = mapped_column(Integer)  # of 256 bits (0010)


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


_READABLE = {"sqlite_where": text("error IS NULL"), "postgresql_where": text("error IS NULL")}


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
        Index("ix_predictions_run_confidence", "run_id", "confidence", "image_id", **_READABLE),
        Index("ix_predictions_run_predicted_readable", "run_id", "predicted", "confidence", "image_id", **_READABLE),
        # a run's embeddings: count, sum of image ids and newest write from the index alone (0009)
        Index("ix_predictions_run_image_written", "run_id", "image_id", "created_at", **_READABLE),
    )


class ImageTag(Base):
    """A saved selection: ``curator find ... --tag T`` names images for FiftyOne and later commands."""

    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(30), default="cli")


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


class Transaction(Base):
    """One request to the prediction service, answered or refused, and its review if any."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    client: Mapped[str | None] = mapped_column(String(200))  # the caller's tag
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    stored_path: Mapped[str | None] = mapped_column(Text)  # the image, when serving keeps them
    status: Mapped[int] = mapped_column(Integer)  # the HTTP status returned
    error: Mapped[str | None] = mapped_column(Text)
    predicted: Mapped[str | None] = mapped_column(String(200))
    confidence: Mapped[float | None] = mapped_column(Float)
    top_k: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[class, confidence], ...]
    threshold: Mapped[float | None] = mapped_column(Float)
    sure: Mapped[bool | None] = mapped_column()  # top confidence cleared the class's threshold
    latency_ms: Mapped[float | None] = mapped_column(Float)  # from request to answer
    model_ms: Mapped[float | None] = mapped_column(Float)  # of which the forward pass
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime)
    correct: Mapped[bool | None] = mapped_column()
    true_label: Mapped[str | None] = mapped_column(String(200))  # the right class, after review
    reviewer: Mapped[str | None] = mapped_column(String(100))
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))  # once imported


# --- Tallies (migration 0008): counts kept by triggers, read by curator.tallies. Append-only
# signed deltas; a count is the SUM of its key's rows. Never written by curator's code but
# curator.tallies.settle, which folds the unsettled deltas into settled rows.

_TALLY_ID = BigInteger().with_variant(Integer(), "sqlite")
_UNSETTLED = {"sqlite_where": text("NOT settled"), "postgresql_where": text("NOT settled")}


class ImageTally(Base):
    """Images by every column ``stats`` and ``classes`` count by: ``n`` of them, ``bytes`` in all."""

    __tablename__ = "image_tallies"

    id: Mapped[int] = mapped_column(_TALLY_ID, primary_key=True)
    label_state: Mapped[str] = mapped_column(String(20))
    class_id: Mapped[int | None] = mapped_column(Integer)
    subclass_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    staged: Mapped[bool] = mapped_column()
    synthetic: Mapped[bool] = mapped_column()
    benchmark: Mapped[bool] = mapped_column()
    format: Mapped[str | None] = mapped_column(String(20))
    n: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[bool] = mapped_column(server_default=false(), default=False)

    __table_args__ = (Index("ix_image_tallies_unsettled", "id", **_UNSETTLED),)


class PredictionTally(Base):
    """A run's readable predictions by predicted class, image state (its label state while
    active, else ``rejected``) and confidence bucket (``floor(confidence * 20)``)."""

    __tablename__ = "prediction_tallies"

    id: Mapped[int] = mapped_column(_TALLY_ID, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer)
    predicted: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    bucket: Mapped[int | None] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[bool] = mapped_column(server_default=false(), default=False)

    __table_args__ = (
        # covering: a run's counts are summed from the index alone
        Index("ix_prediction_tallies_run_state", "run_id", "state", "predicted", "bucket", "n"),
        Index("ix_prediction_tallies_unsettled", "id", **_UNSETTLED),
    )


class RowTally(Base):
    """The rows of a big table counted whole (``label_events``, ``image_locations``)."""

    __tablename__ = "row_tallies"

    id: Mapped[int] = mapped_column(_TALLY_ID, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(50))
    n: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[bool] = mapped_column(server_default=false(), default=False)

    __table_args__ = (Index("ix_row_tallies_unsettled", "id", **_UNSETTLED),)


# --- Embeddings (migration 0009): a vector per image and embedder, read by curator.embeddings.

EMBEDDER_KINDS = ("run", "model")


class Embedder(Base):
    """Where embeddings come from: a run's model (its predictions carry them) or a timm backbone
    with pretrained or local weights (``curator embed``), stored in ``embeddings``."""

    __tablename__ = "embedders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    model: Mapped[str] = mapped_column(String(200))  # timm name
    weights: Mapped[str | None] = mapped_column(Text)  # a file, "pretrained" (timm's hub) or None (a run's)
    dim: Mapped[int | None] = mapped_column(Integer)
    input_size: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (CheckConstraint("kind IN ('run', 'model')", name="kind"),)


class Embedding(Base):
    """One image's L2-normalised float16 vector under one embedder; ``id`` orders the writes
    (an index beside the library adds what came after the last id it holds)."""

    __tablename__ = "embeddings"

    id: Mapped[int] = mapped_column(_TALLY_ID, primary_key=True)
    embedder_id: Mapped[int] = mapped_column(ForeignKey("embedders.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    vector: Mapped[builtins.bytes | None] = mapped_column(LargeBinary)  # None: unreadable, see error
    error: Mapped[str | None] = mapped_column(Text)

    # AUTOINCREMENT: SQLite never gives a deleted row's id again, so a newer write has a higher id.
    __table_args__ = (
        UniqueConstraint("embedder_id", "image_id", name="uq_embeddings_embedder_image"),
        # count, sum of image ids and newest write of the readable vectors, from the index alone
        Index("ix_embeddings_readable", "embedder_id", "image_id", "id", **_READABLE),
        {"sqlite_autoincrement": True},
    )


# --- Discovery (migration 0011): clusters of pool images no class explains (curator.discover).

CLUSTER_STATES = ("open", "labelled", "tagged", "unknown", "rejected", "dismissed", "gone")


class Discovery(Base):
    """One ``curator discover``: its settings and what it clustered."""

    __tablename__ = "discoveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    embedder_id: Mapped[int] = mapped_column(ForeignKey("embedders.id", ondelete="CASCADE"))
    pool: Mapped[str] = mapped_column(String(20))
    min_size: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)
    max_confidence: Mapped[float | None] = mapped_column(Float)  # --max-confidence: a run's unsure ones too
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))  # whose predictions
    candidates: Mapped[int] = mapped_column(Integer, default=0)  # pool images with a vector
    clustered: Mapped[int] = mapped_column(Integer, default=0)  # the unfamiliar ones clustered
    noise: Mapped[int] = mapped_column(Integer, default=0)  # of those, in no cluster
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Cluster(Base):
    """A group of pool images that look alike and like no class: a new class, sub-class or
    look-alike to be. ``number`` is what users type; a later discovery that finds the same
    group again keeps it."""

    __tablename__ = "clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    discovery_id: Mapped[int] = mapped_column(ForeignKey("discoveries.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="open")
    size: Mapped[int] = mapped_column(Integer, default=0)
    cohesion: Mapped[float] = mapped_column(Float, default=0.0)  # mean cosine similarity to its centre
    unknown: Mapped[int] = mapped_column(Integer, default=0)  # members saved as unknown
    nearest: Mapped[str | None] = mapped_column(Text)  # JSON [{class, similarity}], nearest first
    inside: Mapped[str | None] = mapped_column(String(200))  # the class it sits inside, if any
    acted: Mapped[str | None] = mapped_column(Text)  # the last action taken on it
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (one_of("state", CLUSTER_STATES),)


class ClusterMember(Base):
    """An image in a cluster, nearest the centre first (``rank``); ``excluded``: a user said it
    does not belong (``discover --exclude``), so actions and later discoveries leave it out."""

    __tablename__ = "cluster_members"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True)
    rank: Mapped[int] = mapped_column(Integer, default=0)
    excluded: Mapped[bool] = mapped_column(server_default=false(), default=False)
