"""Tallies (migration 0008): counts kept by triggers, read by curator.tallies. Append-only
signed deltas; a count is the SUM of its key's rows. Never written by curator's code but
curator.tallies.settle, which folds the unsettled deltas into settled rows."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from .base import BIG_ID, Base


_UNSETTLED = {"sqlite_where": text("NOT settled"), "postgresql_where": text("NOT settled")}


class ImageTally(Base):
    """Images by every column ``stats`` and ``classes`` count by: ``n`` of them, ``bytes`` in all."""

    __tablename__ = "image_tallies"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
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

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
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

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(50))
    n: Mapped[int] = mapped_column(BigInteger)
    settled: Mapped[bool] = mapped_column(server_default=false(), default=False)

    __table_args__ = (Index("ix_row_tallies_unsettled", "id", **_UNSETTLED),)
