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

Indexes of the readable vectors (error IS NULL) answer how many an embedder has, the sum of
their image ids and the newest write (the index beside the library compares them before every
search) without reading a vector: embeddings (embedder_id, image_id, id), and predictions
(run_id, image_id, created_at) for a run's.

New tables, nullable columns and one index on predictions: seconds on a library of a million.

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

READABLE = {'sqlite_where': sa.text('error IS NULL'), 'postgresql_where': sa.text('error IS NULL')}


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
    op.create_index('ix_embeddings_readable', 'embeddings', ['embedder_id', 'image_id', 'id'], unique=False,
                    **READABLE)
    op.create_index('ix_predictions_run_image_written', 'predictions', ['run_id', 'image_id', 'created_at'],
                    unique=False, **READABLE)
    op.add_column('duplicate_pairs', sa.Column('similarity', sa.Float(), nullable=True))
    op.add_column('dedup_runs', sa.Column('embedder', sa.String(length=200), nullable=True))
    op.add_column('dedup_runs', sa.Column('min_similarity', sa.Float(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch rebuild of a table other tables point
    # at fails its foreign keys on a library with rows.
    for table, column in (('dedup_runs', 'min_similarity'), ('dedup_runs', 'embedder'),
                          ('duplicate_pairs', 'similarity')):
        op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')
    op.drop_index('ix_predictions_run_image_written', table_name='predictions')
    op.drop_index('ix_embeddings_readable', table_name='embeddings')
    op.drop_index(op.f('ix_embeddings_image_id'), table_name='embeddings')
    op.drop_table('embeddings')
    op.drop_table('embedders')
