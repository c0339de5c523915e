"""Tallies: the counts `stats`, `classes`, `coverage` and `find` report, kept by triggers.

Counting a million images or predictions takes 0.2-2.5 s however good the index; reading a
few thousand kept counts takes milliseconds. Three append-only tables hold signed deltas,
written by triggers on every change to the rows they count, whoever writes (curator, a
script, psql):

- image_tallies (label_state, class_id, subclass_id, status, staged, synthetic, benchmark,
  format) -> n, bytes: the images by every column `stats` and `classes` group by;
- prediction_tallies (run_id, predicted, state, bucket) -> n: a run's readable predictions
  (error IS NULL) by predicted class, the image's state (its label state while active, else
  'rejected') and confidence bucket (floor(confidence * 20), buckets of 0.05: a count between two
  confidences is the buckets between them plus an exact look at the two edge buckets);
- row_tallies (table_name) -> n: the rows of label_events and image_locations.

A count is the SUM of its key's rows. Triggers only ever INSERT, so writers never wait on
each other for a count row (no lock, no deadlock between two imports or an import and a
relabel); `curator.tallies.settle` folds the deltas (settled = false) into one settled row
a key now and then. The upgrade creates the triggers, then fills the tables from the rows
already there, in one transaction (PostgreSQL's CREATE TRIGGER locks writers out until it
commits): seconds on a library of a million images.

Keep in mind: SQLite drops a table's triggers when a batch migration rebuilds it; a later
migration that rebuilds images, predictions, label_events or image_locations must create
them again (tests/test_tallies.py fails if one is missing).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

IMAGE_KEYS = ('label_state', 'class_id', 'subclass_id', 'status', 'staged', 'synthetic', 'benchmark', 'format')
ROW_TABLES = ('label_events', 'image_locations')
UNSETTLED = {'sqlite_where': sa.text('NOT settled'), 'postgresql_where': sa.text('NOT settled')}


def _id():
    return sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False)


def _settled():
    return sa.Column('settled', sa.Boolean(), server_default=sa.false(), nullable=False)


def _tables() -> None:
    op.create_table(
        'image_tallies', _id(),
        sa.Column('label_state', sa.String(length=20), nullable=False),
        sa.Column('class_id', sa.Integer(), nullable=True),
        sa.Column('subclass_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('staged', sa.Boolean(), nullable=False),
        sa.Column('synthetic', sa.Boolean(), nullable=False),
        sa.Column('benchmark', sa.Boolean(), nullable=False),
        sa.Column('format', sa.String(length=20), nullable=True),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('bytes', sa.BigInteger(), nullable=False),
        _settled(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_image_tallies')),
    )
    op.create_table(
        'prediction_tallies', _id(),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('predicted', sa.String(length=200), nullable=True),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('bucket', sa.Integer(), nullable=True),
        sa.Column('n', sa.BigInteger(), nullable=False),
        _settled(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_tallies')),
    )
    op.create_table(
        'row_tallies', _id(),
        sa.Column('table_name', sa.String(length=50), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        _settled(),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_row_tallies')),
    )
    op.create_index('ix_prediction_tallies_run_state', 'prediction_tallies', ['run_id', 'state', 'predicted', 'bucket', 'n'])
    for table in ('image_tallies', 'prediction_tallies', 'row_tallies'):
        op.create_index(f'ix_{table}_unsettled', table, ['id'], **UNSETTLED)


def _state(row: str) -> str:
    return f"(CASE WHEN {row}.status = 'active' THEN {row}.label_state ELSE 'rejected' END)"


def _bucket(confidence: str, dialect: str) -> str:
    # floor(): PostgreSQL's CAST to integer rounds; SQLite's truncates (the same for c >= 0)
    return f"CAST(floor({confidence} * 20) AS INTEGER)" if dialect == 'postgresql' else \
        f"CAST({confidence} * 20 AS INTEGER)"


def _image_row(row: str, sign: str) -> str:
    values = ', '.join(f'{row}.{k}' for k in IMAGE_KEYS)
    return f"({values}, {sign}1, {sign}{row}.bytes)"


INSERT_IMAGE = f"INSERT INTO image_tallies ({', '.join(IMAGE_KEYS)}, n, bytes) VALUES "
INSERT_PREDICTION = "INSERT INTO prediction_tallies (run_id, predicted, state, bucket, n) "


def _predictions_of(image: str, sign: str, dialect: str) -> str:
    """The rows that move an image's readable predictions in or out of ``image``'s state."""
    return (f"SELECT run_id, predicted, {_state(image)}, {_bucket('confidence', dialect)}, {sign}1"
            f" FROM predictions WHERE image_id = {image}.id AND error IS NULL")


def _prediction(pred: str, sign: str, dialect: str) -> str:
    """The row of one readable prediction, in its image's state (none if the image is gone)."""
    return (f"SELECT {pred}.run_id, {pred}.predicted, {_state('i')}, {_bucket(pred + '.confidence', dialect)},"
            f" {sign}1 FROM images i WHERE i.id = {pred}.image_id AND {pred}.error IS NULL")


def _changed(keys) -> str:
    return ' OR '.join(f'OLD.{k} IS DISTINCT FROM NEW.{k}' for k in keys)


IMAGE_COLUMNS = ', '.join((*IMAGE_KEYS, 'bytes'))
PREDICTION_COLUMNS = 'run_id, image_id, predicted, confidence, error'


def _sqlite_triggers() -> list[str]:
    d = 'sqlite'
    changed = _changed((*IMAGE_KEYS, 'bytes')).replace('IS DISTINCT FROM', 'IS NOT')
    out = [
        f"CREATE TRIGGER tally_images_insert AFTER INSERT ON images BEGIN"
        f" {INSERT_IMAGE}{_image_row('NEW', '+')}; END",
        f"CREATE TRIGGER tally_images_update AFTER UPDATE OF {IMAGE_COLUMNS} ON images WHEN {changed} BEGIN"
        f" {INSERT_IMAGE}{_image_row('OLD', '-')}, {_image_row('NEW', '+')}; END",
        # BEFORE: the image's predictions are still there to be taken out (the cascade follows)
        f"CREATE TRIGGER tally_images_delete BEFORE DELETE ON images BEGIN"
        f" {INSERT_IMAGE}{_image_row('OLD', '-')}; {INSERT_PREDICTION}{_predictions_of('OLD', '-', d)}; END",
        f"CREATE TRIGGER tally_images_state AFTER UPDATE OF label_state, status ON images"
        f" WHEN {_state('OLD')} IS NOT {_state('NEW')} BEGIN {INSERT_PREDICTION}{_predictions_of('OLD', '-', d)}"
        f" UNION ALL {_predictions_of('NEW', '+', d)}; END",
        f"CREATE TRIGGER tally_predictions_insert AFTER INSERT ON predictions BEGIN"
        f" {INSERT_PREDICTION}{_prediction('NEW', '+', d)}; END",
        f"CREATE TRIGGER tally_predictions_delete AFTER DELETE ON predictions BEGIN"
        f" {INSERT_PREDICTION}{_prediction('OLD', '-', d)}; END",
        f"CREATE TRIGGER tally_predictions_update AFTER UPDATE OF {PREDICTION_COLUMNS} ON predictions BEGIN"
        f" {INSERT_PREDICTION}{_prediction('OLD', '-', d)} UNION ALL {_prediction('NEW', '+', d)}; END",
    ]
    for table in ROW_TABLES:
        out += [f"CREATE TRIGGER tally_{table}_insert AFTER INSERT ON {table} BEGIN"
                f" INSERT INTO row_tallies (table_name, n) VALUES ('{table}', 1); END",
                f"CREATE TRIGGER tally_{table}_delete AFTER DELETE ON {table} BEGIN"
                f" INSERT INTO row_tallies (table_name, n) VALUES ('{table}', -1); END"]
    return out


def _postgresql_triggers() -> list[str]:
    d = 'postgresql'
    images = f"""
CREATE FUNCTION tally_images() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {INSERT_IMAGE}{_image_row('NEW', '+')};
  ELSIF TG_OP = 'UPDATE' THEN
    IF {_changed((*IMAGE_KEYS, 'bytes'))} THEN
      {INSERT_IMAGE}{_image_row('OLD', '-')}, {_image_row('NEW', '+')};
    END IF;
    IF {_state('OLD')} IS DISTINCT FROM {_state('NEW')} THEN
      {INSERT_PREDICTION}{_predictions_of('OLD', '-', d)} UNION ALL {_predictions_of('NEW', '+', d)};
    END IF;
  ELSE
    {INSERT_IMAGE}{_image_row('OLD', '-')};
    {INSERT_PREDICTION}{_predictions_of('OLD', '-', d)};
    RETURN OLD;
  END IF;
  RETURN NULL;
END $$"""
    predictions = f"""
CREATE FUNCTION tally_predictions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The image's state, read under a share lock: a concurrent change of its label waits for this
  -- transaction, or this one for it (and then reads the state it committed), so a prediction is
  -- never counted in a state its image has left.
  PERFORM 1 FROM images WHERE id IN (OLD.image_id, NEW.image_id) ORDER BY id FOR SHARE;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    {INSERT_PREDICTION}{_prediction('OLD', '-', d)};
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    {INSERT_PREDICTION}{_prediction('NEW', '+', d)};
  END IF;
  RETURN NULL;
END $$"""
    rows = """
CREATE FUNCTION tally_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO row_tallies (table_name, n)
  SELECT TG_TABLE_NAME, CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END * count(*) FROM changed
  HAVING count(*) > 0;
  RETURN NULL;
END $$"""
    out = [
        images, predictions, rows,
        f"CREATE TRIGGER tally_images_change AFTER INSERT OR UPDATE OF {IMAGE_COLUMNS} ON images"
        " FOR EACH ROW EXECUTE FUNCTION tally_images()",
        # BEFORE: the image's predictions are still there to be taken out (the cascade follows)
        "CREATE TRIGGER tally_images_delete BEFORE DELETE ON images FOR EACH ROW EXECUTE FUNCTION tally_images()",
        f"CREATE TRIGGER tally_predictions_change AFTER INSERT OR DELETE OR UPDATE OF {PREDICTION_COLUMNS}"
        " ON predictions FOR EACH ROW EXECUTE FUNCTION tally_predictions()",
    ]
    for table in ROW_TABLES:  # per statement: an import's thousand events are one delta
        out += [f"CREATE TRIGGER tally_{table}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS changed"
                f" FOR EACH STATEMENT EXECUTE FUNCTION tally_rows()",
                f"CREATE TRIGGER tally_{table}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS changed"
                f" FOR EACH STATEMENT EXECUTE FUNCTION tally_rows()"]
    return out


def _fill(dialect: str) -> list[str]:
    keys = ', '.join(IMAGE_KEYS)
    out = [
        f"INSERT INTO image_tallies ({keys}, n, bytes, settled)"
        f" SELECT {keys}, count(*), sum(bytes), true FROM images GROUP BY {keys}",
        f"INSERT INTO prediction_tallies (run_id, predicted, state, bucket, n, settled)"
        f" SELECT p.run_id, p.predicted, {_state('i')}, {_bucket('p.confidence', dialect)}, count(*), true"
        f" FROM predictions p JOIN images i ON i.id = p.image_id WHERE p.error IS NULL GROUP BY 1, 2, 3, 4",
    ]
    out += [f"INSERT INTO row_tallies (table_name, n, settled) SELECT '{t}', count(*), true FROM {t}"
            for t in ROW_TABLES]
    return out


def upgrade() -> None:
    _tables()
    dialect = op.get_bind().dialect.name
    for statement in (_postgresql_triggers() if dialect == 'postgresql' else _sqlite_triggers()) + _fill(dialect):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('images', 'predictions'):
            op.execute(f"DROP TRIGGER IF EXISTS tally_{table}_change ON {table}")
        op.execute("DROP TRIGGER IF EXISTS tally_images_delete ON images")
        for table in ROW_TABLES:
            for event in ('insert', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS tally_{table}_{event} ON {table}")
        for function in ('tally_images', 'tally_predictions', 'tally_rows'):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for name in ('images_insert', 'images_update', 'images_delete', 'images_state', 'predictions_insert',
                     'predictions_delete', 'predictions_update', *(f'{t}_{e}' for t in ROW_TABLES
                                                                  for e in ('insert', 'delete'))):
            op.execute(f"DROP TRIGGER IF EXISTS tally_{name}")
    for table in ('image_tallies', 'prediction_tallies', 'row_tallies'):
        op.drop_index(f'ix_{table}_unsettled', table_name=table)
    op.drop_index('ix_prediction_tallies_run_state', table_name='prediction_tallies')
    for table in ('row_tallies', 'prediction_tallies', 'image_tallies'):
        op.drop_table(table)
