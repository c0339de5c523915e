"""Label history: every change to an image's label, status, flags or note, appended, never edited."""

from __future__ import annotations

import getpass
import os

from sqlalchemy import select
from sqlalchemy.orm import Session

from curator.library.models import Image, LabelEvent, utcnow


def actor() -> str | None:
    """Who is making changes: ``CURATOR_USER``, else the login name (looked up on each change)."""
    try:
        return os.environ.get("CURATOR_USER") or getpass.getuser()
    except (KeyError, OSError):
        return None


def record(
    session: Session,
    image: Image,
    action: str,
    field: str,
    old: str | None,
    new: str | None,
    *,
    source: str = "cli",
    detail: str | None = None,
) -> LabelEvent:
    """Append one history row for ``image`` (added to the session, not committed)."""
    event = LabelEvent(
        image=image,
        at=utcnow(),
        action=action,
        field=field,
        old_value=old,
        new_value=new,
        source=source,
        actor=actor(),
        detail=detail,
    )
    session.add(event)
    return event


def events(session: Session, image: Image) -> list[dict]:
    """An image's history, oldest first, as plain dicts."""
    q = select(LabelEvent).where(LabelEvent.image_id == image.id).order_by(LabelEvent.id)
    return [
        {
            "at": e.at.isoformat(timespec="seconds"),
            "action": e.action,
            "field": e.field,
            "old": e.old_value,
            "new": e.new_value,
            "source": e.source,
            "actor": e.actor,
            "detail": e.detail,
        }
        for e in session.scalars(q)
    ]
