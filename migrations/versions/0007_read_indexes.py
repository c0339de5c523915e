"""Indexes for the questions `find`, `coverage`, `classes` and `stats` answer in the database.

- predictions (run_id, confidence, image_id) and (run_id, predicted, confidence, image_id), both
  of readable predictions only (WHERE error IS NULL, what every question reads): `find --lowest N`
  / `--max-confidence` read a run's least sure predictions in order and stop after N; `--class C`,
  the per-class orders and the per-class counts of `coverage` read the second. Partial, so no
  prediction row (with its embedding) is read to learn whether it is readable.
- images (label_state, class_id, subclass_id, status, staged, synthetic, benchmark, format, bytes):
  the per-class counts of `classes`, `coverage`, `find --low-count` / `--synthetic-dependent`
  and every count of `stats` are read from the index alone, already grouped by class.

Plain CREATE INDEX, no table rewrite: seconds on a library of a million images.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

READABLE = {'sqlite_where': sa.text('error IS NULL'), 'postgresql_where': sa.text('error IS NULL')}
INDEXES = {
    'ix_predictions_run_confidence': ('predictions', ['run_id', 'confidence', 'image_id'], READABLE),
    'ix_predictions_run_predicted_readable': ('predictions', ['run_id', 'predicted', 'confidence', 'image_id'],
                                              READABLE),
    'ix_images_label_class': ('images', ['label_state', 'class_id', 'subclass_id', 'status', 'staged',
                                         'synthetic', 'benchmark', 'format', 'bytes'], {}),
}


def upgrade() -> None:
    for name, (table, columns, where) in INDEXES.items():
        op.create_index(name, table, columns, unique=False, **where)


def downgrade() -> None:
    for name, (table, *_) in INDEXES.items():
        op.drop_index(name, table_name=table)
