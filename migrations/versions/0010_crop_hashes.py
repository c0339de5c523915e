"""Crop-tolerant pHashes (curator.crop_hash): dedup finds 3-5% crops and checks finer.

- images.crop_phashes: 64-bit pHashes of the image with 3% and 5% cut off each side;
- images.fine_hashes: 256-bit pHashes of the whole image and the same inner crops;
- dedup_runs.detail_threshold: the run's limit on the 256-bit check.

Nullable columns: instant on a library of a million. Images imported before have none; the next
`dedup` computes them from the files (and, its settings being new, compares everything again).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 15:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('images', sa.Column('crop_phashes', sa.LargeBinary(length=16), nullable=True))
    op.add_column('images', sa.Column('fine_hashes', sa.LargeBinary(length=96), nullable=True))
    op.add_column('dedup_runs', sa.Column('detail_threshold', sa.Integer(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as 0009: a batch rebuild of images fails the
    # foreign keys that point at it on a library with rows.
    for table, column in (('dedup_runs', 'detail_threshold'), ('images', 'fine_hashes'),
                          ('images', 'crop_phashes')):
        op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')
