"""Inserts that skip rows already there, on SQLite and PostgreSQL alike.

Two jobs writing the same rows at once (two ``bulk-identify`` runs of one model over one pool,
not sharded under one torchrun) each checked what was missing before the other wrote it; the
row that arrives second is then the same fact twice, not an error.
"""

from __future__ import annotations

from sqlalchemy.orm import Session


def insert_new(session: Session, model, rows: list[dict]) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` of ``rows`` into ``model``'s table."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(model).on_conflict_do_nothing(), rows)
