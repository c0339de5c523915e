"""Initial library schema: images, their locations, classes, sub-classes, import batches, label history.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:30:03.110443
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('classes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_classes')),
    sa.UniqueConstraint('name', name=op.f('uq_classes_name'))
    )
    op.create_table('import_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('roots', sa.Text(), nullable=False),
    sa.Column('options', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('running', 'done', 'interrupted')", name=op.f('ck_import_batches_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_batches'))
    )
    op.create_table('subclasses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_subclasses_class_id_classes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subclasses')),
    sa.UniqueConstraint('class_id', 'name', name='uq_subclasses_class_id_name'),
    sa.UniqueConstraint('id', 'class_id', name='uq_subclasses_id_class_id')
    )
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('phash', sa.BigInteger(), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('format', sa.String(length=20), nullable=True),
    sa.Column('mode', sa.String(length=20), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('exif_orientation', sa.Integer(), nullable=True),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reject_reason', sa.Text(), nullable=True),
    sa.Column('label_state', sa.String(length=20), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=True),
    sa.Column('subclass_id', sa.Integer(), nullable=True),
    sa.Column('staged', sa.Boolean(), nullable=False),
    sa.Column('synthetic', sa.Boolean(), nullable=False),
    sa.Column('benchmark', sa.Boolean(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("(label_state = 'labelled') = (class_id IS NOT NULL)", name=op.f('ck_images_class_iff_labelled')),
    sa.CheckConstraint("label_state IN ('unlabelled', 'labelled', 'unknown')", name=op.f('ck_images_label_state')),
    sa.CheckConstraint("status IN ('active', 'rejected')", name=op.f('ck_images_status')),
    sa.CheckConstraint('subclass_id IS NULL OR class_id IS NOT NULL', name=op.f('ck_images_subclass_needs_class')),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], name=op.f('fk_images_batch_id_import_batches')),
    sa.ForeignKeyConstraint(['class_id'], ['classes.id'], name=op.f('fk_images_class_id_classes')),
    sa.ForeignKeyConstraint(['subclass_id', 'class_id'], ['subclasses.id', 'subclasses.class_id'], name='fk_images_subclass_id_subclasses'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('sha256', name=op.f('uq_images_sha256'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index('ix_images_class_subclass', ['class_id', 'subclass_id'], unique=False)
        batch_op.create_index('ix_images_label_state', ['label_state'], unique=False)
        batch_op.create_index('ix_images_phash', ['phash'], unique=False)

    op.create_table('image_locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
    sa.Column('folder_label', sa.Text(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('added_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['import_batches.id'], name=op.f('fk_image_locations_batch_id_import_batches')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_image_locations_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_locations')),
    sa.UniqueConstraint('path', name=op.f('uq_image_locations_path'))
    )
    with op.batch_alter_table('image_locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_locations_image_id'), ['image_id'], unique=False)

    op.create_table('label_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('field', sa.String(length=20), nullable=False),
    sa.Column('old_value', sa.Text(), nullable=True),
    sa.Column('new_value', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=30), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_label_events_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_events'))
    )
    with op.batch_alter_table('label_events', schema=None) as batch_op:
        batch_op.create_index('ix_label_events_image_id_at', ['image_id', 'at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('label_events', schema=None) as batch_op:
        batch_op.drop_index('ix_label_events_image_id_at')

    op.drop_table('label_events')
    with op.batch_alter_table('image_locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_locations_image_id'))

    op.drop_table('image_locations')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('ix_images_phash')
        batch_op.drop_index('ix_images_label_state')
        batch_op.drop_index('ix_images_class_subclass')

    op.drop_table('images')
    op.drop_table('subclasses')
    op.drop_table('import_batches')
    op.drop_table('classes')
