"""Serving: per-class confidence thresholds and the transaction log of every request.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:40:07.715417
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('thresholds',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('class_name', sa.String(length=200), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('target_precision', sa.Float(), nullable=False),
    sa.Column('precision', sa.Float(), nullable=True),
    sa.Column('recall', sa.Float(), nullable=True),
    sa.Column('support', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_thresholds_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'class_name', name=op.f('pk_thresholds'))
    )
    op.create_table('transactions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('client', sa.String(length=200), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=True),
    sa.Column('stored_path', sa.Text(), nullable=True),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('predicted', sa.String(length=200), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('top_k', sa.Text(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('sure', sa.Boolean(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=True),
    sa.Column('model_ms', sa.Float(), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('correct', sa.Boolean(), nullable=True),
    sa.Column('true_label', sa.String(length=200), nullable=True),
    sa.Column('reviewer', sa.String(length=100), nullable=True),
    sa.Column('image_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_transactions_image_id_images'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_transactions_run_id_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactions'))
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transactions_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactions_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactions_sha256'), ['sha256'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transactions_sha256'))
        batch_op.drop_index(batch_op.f('ix_transactions_run_id'))
        batch_op.drop_index(batch_op.f('ix_transactions_at'))

    op.drop_table('transactions')
    op.drop_table('thresholds')
