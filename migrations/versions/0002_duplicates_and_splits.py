"""Duplicate groups and their evidence, dedup runs, a colour signature per image, split builds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 02:29:39.988965
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dedup_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('color_threshold', sa.Float(), nullable=False),
    sa.Column('last_image_id', sa.Integer(), nullable=False),
    sa.Column('compared', sa.Integer(), nullable=False),
    sa.Column('new_pairs', sa.Integer(), nullable=False),
    sa.Column('groups', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dedup_runs'))
    )
    op.create_table('duplicate_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('canonical_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    # images exists already, so the key is made inline: with use_alter=True (as in the model,
    # for create_all's sake) a database with ALTER, such as PostgreSQL, would leave it out.
    sa.ForeignKeyConstraint(['canonical_id'], ['images.id'], name=op.f('fk_duplicate_groups_canonical_id_images'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_duplicate_groups'))
    )
    op.create_table('split_builds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('classes', sa.Text(), nullable=False),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('previous_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['previous_id'], ['split_builds.id'], name=op.f('fk_split_builds_previous_id_split_builds')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_split_builds')),
    sa.UniqueConstraint('name', name=op.f('uq_split_builds_name'))
    )
    op.create_table('duplicate_pairs',
    sa.Column('image_a', sa.Integer(), nullable=False),
    sa.Column('image_b', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('distance', sa.Integer(), nullable=False),
    sa.Column('color_distance', sa.Float(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.CheckConstraint('image_a < image_b', name=op.f('ck_duplicate_pairs_ordered')),
    sa.ForeignKeyConstraint(['image_a'], ['images.id'], name=op.f('fk_duplicate_pairs_image_a_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_b'], ['images.id'], name=op.f('fk_duplicate_pairs_image_b_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['dedup_runs.id'], name=op.f('fk_duplicate_pairs_run_id_dedup_runs')),
    sa.PrimaryKeyConstraint('image_a', 'image_b', name=op.f('pk_duplicate_pairs'))
    )
    with op.batch_alter_table('duplicate_pairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_pairs_image_b'), ['image_b'], unique=False)

    op.create_table('split_members',
    sa.Column('build_id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('split', sa.String(length=20), nullable=False),
    sa.CheckConstraint("split IN ('train', 'val', 'test', 'benchmark')", name=op.f('ck_split_members_split')),
    sa.ForeignKeyConstraint(['build_id'], ['split_builds.id'], name=op.f('fk_split_members_build_id_split_builds'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_split_members_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('build_id', 'image_id', name=op.f('pk_split_members'))
    )
    with op.batch_alter_table('split_members', schema=None) as batch_op:
        batch_op.create_index('ix_split_members_build_split', ['build_id', 'split'], unique=False)
        batch_op.create_index(batch_op.f('ix_split_members_image_id'), ['image_id'], unique=False)

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('color_sig', sa.LargeBinary(length=48), nullable=True))
        batch_op.add_column(sa.Column('dup_group_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_images_dup_group_id'), ['dup_group_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_images_dup_group_id_duplicate_groups'), 'duplicate_groups', ['dup_group_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_images_dup_group_id_duplicate_groups'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_images_dup_group_id'))
        batch_op.drop_column('dup_group_id')
        batch_op.drop_column('color_sig')

    with op.batch_alter_table('split_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_split_members_image_id'))
        batch_op.drop_index('ix_split_members_build_split')

    op.drop_table('split_members')
    with op.batch_alter_table('duplicate_pairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_duplicate_pairs_image_b'))

    op.drop_table('duplicate_pairs')
    op.drop_table('split_builds')
    op.drop_table('duplicate_groups')
    op.drop_table('dedup_runs')
