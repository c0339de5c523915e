"""The prediction service's transaction log (``curator serve``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


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
