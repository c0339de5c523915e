"""What every table shares: the declarative base, its constraint names, the label states and the
small helpers the tables' columns and checks use."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import BigInteger, CheckConstraint, Integer, MetaData, text
from sqlalchemy.orm import DeclarativeBase

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

# A 64-bit id on PostgreSQL for append-heavy tables; INTEGER on SQLite, where only it autoincrements.
BIG_ID = BigInteger().with_variant(Integer(), "sqlite")
# The WHERE of partial indexes over readable rows (predictions, embeddings): unreadable ones carry an error.
READABLE_ONLY = {"sqlite_where": text("error IS NULL"), "postgresql_where": text("error IS NULL")}


def utcnow() -> datetime:
    """Now, in UTC, without tzinfo (SQLite stores naive timestamps; all of ours are UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    """A CHECK that ``column`` holds one of ``values``, named after the column."""
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
