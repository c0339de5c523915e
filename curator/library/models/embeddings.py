"""Embeddings (migration 0009): a vector per image and embedder, read by curator.embeddings."""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import BIG_ID, READABLE_ONLY, Base, utcnow


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

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    embedder_id: Mapped[int] = mapped_column(ForeignKey("embedders.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    vector: Mapped[builtins.bytes | None] = mapped_column(LargeBinary)  # None: unreadable, see error
    error: Mapped[str | None] = mapped_column(Text)

    # AUTOINCREMENT: SQLite never gives a deleted row's id again, so a newer write has a higher id.
    __table_args__ = (
        UniqueConstraint("embedder_id", "image_id", name="uq_embeddings_embedder_image"),
        # count, sum of image ids and newest write of the readable vectors, from the index alone
        Index("ix_embeddings_readable", "embedder_id", "image_id", "id", **READABLE_ONLY),
        {"sqlite_autoincrement": True},
    )
