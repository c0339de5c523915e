"""Discovery: clusters of pool images that no class explains (`curator discover`).

- discoveries: one `curator discover`, its settings (embedder, pool, min size, unfamiliar share,
  the run and confidence of `--max-confidence`) and counts;
- clusters: a group of images with the number users type, kept by a later discovery that finds
  the same group (state open, labelled, tagged, unknown, rejected, dismissed or gone), its size,
  cohesion, unknown members, nearest classes and the class it sits inside;
- cluster_members: (cluster, image), rank from the centre, and `excluded` (`--exclude`).

New tables only: instant on a library of any size.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

STATES = "state IN ('open', 'labelled', 'tagged', 'unknown', 'rejected', 'dismissed', 'gone')"


def upgrade() -> None:
    op.create_table(
        'discoveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('embedder_id', sa.Integer(), nullable=False),
        sa.Column('pool', sa.String(length=20), nullable=False),
        sa.Column('min_size', sa.Integer(), nullable=False),
        sa.Column('share', sa.Float(), nullable=False),
        sa.Column('max_confidence', sa.Float(), nullable=True),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('candidates', sa.Integer(), nullable=False),
        sa.Column('clustered', sa.Integer(), nullable=False),
        sa.Column('noise', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['embedder_id'], ['embedders.id'], name=op.f('fk_discoveries_embedder_id_embedders'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_discoveries_run_id_runs'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_discoveries')),
    )
    op.create_table(
        'clusters',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('discovery_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('cohesion', sa.Float(), nullable=False),
        sa.Column('unknown', sa.Integer(), nullable=False),
        sa.Column('nearest', sa.Text(), nullable=True),
        sa.Column('inside', sa.String(length=200), nullable=True),
        sa.Column('acted', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint(STATES, name=op.f('ck_clusters_state')),
        sa.ForeignKeyConstraint(['discovery_id'], ['discoveries.id'], name=op.f('fk_clusters_discovery_id_discoveries'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_clusters')),
        sa.UniqueConstraint('number', name=op.f('uq_clusters_number')),
    )
    op.create_index(op.f('ix_clusters_discovery_id'), 'clusters', ['discovery_id'], unique=False)
    op.create_table(
        'cluster_members',
        sa.Column('cluster_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('excluded', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(['cluster_id'], ['clusters.id'], name=op.f('fk_cluster_members_cluster_id_clusters'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_cluster_members_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('cluster_id', 'image_id', name=op.f('pk_cluster_members')),
    )
    op.create_index(op.f('ix_cluster_members_image_id'), 'cluster_members', ['image_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_cluster_members_image_id'), table_name='cluster_members')
    op.drop_table('cluster_members')
    op.drop_index(op.f('ix_clusters_discovery_id'), table_name='clusters')
    op.drop_table('clusters')
    op.drop_table('discoveries')
