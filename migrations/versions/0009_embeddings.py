"""Embeddings: a vector per image and embedder (`curator embed`, `similar`, `find --unfamiliar`).

- embedders: where vectors come from, a run's model (kind 'run': its predictions already carry
  a float16 pre-logit embedding, read from there, never copied) or a timm backbone with
  pretrained or local weights (kind 'model', `curator embed`);
- embeddings (id, embedder_id, image_id, vector, error): one L2-normalised float16 vector per
  image and embedder (1 KiB at 512-d), or the reason the file could not be read. `id` orders
  the writes (AUTOINCREMENT on SQLite: a deleted row's id is never given again): the
  nearest-neighbour index kept beside the library replaces the rows after the last id it holds;
- duplicate_pairs.similarity: the cosine similarity of a pair of kind 'embedding' (`dedup
  --embeddings`); dedup_runs.embedder and .min_similarity: the settings of such a run.

New tables and nullable columns only: instant on any library.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 11:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'embedders',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('weights', sa.Text(), nullable=True),
        sa.Column('dim', sa.Integer(), nullable=True),
        sa.Column('input_size', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('run', 'model')", name=op.f('ck_embedders_kind')),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_embedders_run_id_runs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_embedders')),
        sa.UniqueConstraint('name', name=op.f('uq_embedders_name')),
        sa.UniqueConstraint('run_id', name=op.f('uq_embedders_run_id')),
    )
    op.create_table(
        'embeddings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('embedder_id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('vector', sa.LargeBinary(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['embedder_id'], ['embedders.id'], name=op.f('fk_embeddings_embedder_id_embedders'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_embeddings_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_embeddings')),
        sa.UniqueConstraint('embedder_id', 'image_id', name='uq_embeddings_embedder_image'),
        sqlite_autoincrement=True,  # ids never reused: the index beside the library replaces newer rows
    )
    op.create_index(op.f('ix_embeddings_image_id'), 'embeddings', ['image_id'], unique=False)
    op.add_column('duplicate_pairs', sa.Column('similarity', sa.Float(), nullable=True))
    op.add_column('dedup_runs', sa.Column('embedder', sa.String(length=200), nullable=True))
    op.add_column('dedup_runs', sa.Column('min_similarity', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dedup_runs') as batch:
        batch.drop_column('min_similarity')
        batch.drop_column('embedder')
    with op.batch_alter_table('duplicate_pairs') as batch:
        batch.drop_column('similarity')
    op.drop_index(op.f('ix_embeddings_image_id'), table_name='embeddings')
    op.drop_table('embeddings')
    op.drop_table('embedders')
