"""Images and their labels: import batches, classes and sub-classes, images, their paths,
history and tags."""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import ACTIVE, LABEL_STATES, LABELLED, REJECTED, UNLABELLED, Base, label_text, one_of, utcnow


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


class ImageTag(Base):
    """A saved selection: ``curator find ... --tag T`` names images for FiftyOne and later commands."""

    __tablename__ = "image_tags"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(30), default="cli")
