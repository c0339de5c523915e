"""Runs say what they are for: `train` (a real run) or a helper (`suspects` folds, `sweep` trials).

Helper runs never count as the latest run. Existing `suspects-RUN-foldN` runs become `suspects`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 10:12:41.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), server_default='train', nullable=False))
        batch_op.create_check_constraint('purpose', "purpose IN ('train', 'suspects', 'sweep')")
    op.execute("UPDATE runs SET purpose = 'suspects' WHERE name LIKE 'suspects-%-fold%'")


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_runs_purpose'), type_='check')
        batch_op.drop_column('purpose')
