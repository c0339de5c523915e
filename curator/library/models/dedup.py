"""Duplicates: groups of the same picture, the pairs that prove them, and each ``curator dedup``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .images import Image


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
