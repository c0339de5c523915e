"""Discovery (migration 0011): clusters of pool images no class explains (curator.discover)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, one_of, utcnow


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
