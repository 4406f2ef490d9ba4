"""Cell keys: a secret record key per encounter, and key sums beside every counter.

Published figures are perturbed by the cell key method (``services/disclosure.py``):
each encounter gets a 32-bit record key, a keyed hash of its id under the pepper
(``crypto.record_key``), and every rollup counter keeps the sum of its encounters'
keys modulo 2^32 beside its count. Existing encounters get their keys here, which is
why an upgrade over existing data needs the pepper (``flask db upgrade`` passes the
app's); the rollups are then rebuilt by ``flask db upgrade`` (``migrate.REBUILDS``),
which fills the new key columns and the person keys.

Revision ID: 0013
Revises: 0012_rollup_fillfactor
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context, op

from outreach.services.crypto import record_key

revision: str = "0013"
down_revision: str | None = "0012_rollup_fillfactor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTER_TABLES = ("rollup_sectors", "rollup_cells", "rollup_totals")
CELL_SPAN_KEYS = ("encounters_key", "kits_key", "referrals_key")
BATCH = 5_000
VERSIONS_FK = "fk_encounter_versions_encounter_id_encounters"


@contextmanager
def _versions_unlinked() -> Iterator[None]:
    """SQLite changes ``encounters`` by copying it into a new table and dropping the old
    one, and dropping it deletes every version that points at it (``ON DELETE
    CASCADE``): the versions' link is taken off while ``encounters`` changes."""
    with op.batch_alter_table("encounter_versions") as batch:
        batch.drop_constraint(VERSIONS_FK, type_="foreignkey")
    yield
    with op.batch_alter_table("encounter_versions") as batch:
        batch.create_foreign_key(
            VERSIONS_FK, "encounters", ["encounter_id"], ["id"], ondelete="CASCADE"
        )


def upgrade() -> None:
    with _versions_unlinked():
        with op.batch_alter_table("encounters") as batch:
            batch.add_column(sa.Column("record_key", sa.Integer(), nullable=True))
        _fill_record_keys()
        with op.batch_alter_table("encounters") as batch:
            batch.alter_column("record_key", existing_type=sa.Integer(), nullable=False)
    for table in COUNTER_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("ckey", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("rollup_cell_spans") as batch:
        for name in CELL_SPAN_KEYS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("rollup_person_years") as batch:
        batch.add_column(sa.Column("person_key", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("rollup_person_years") as batch:
        batch.drop_column("person_key")
    with op.batch_alter_table("rollup_cell_spans") as batch:
        for name in CELL_SPAN_KEYS:
            batch.drop_column(name)
    for table in COUNTER_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("ckey")
    with _versions_unlinked(), op.batch_alter_table("encounters") as batch:
        batch.drop_column("record_key")


def _fill_record_keys() -> None:
    connection = op.get_bind()
    encounters = sa.table("encounters", sa.column("id", sa.Uuid()), sa.column("record_key"))
    if connection.scalar(sa.select(sa.func.count()).select_from(encounters)) == 0:
        return
    pepper = context.config.attributes.get("pepper")
    if not pepper:
        raise RuntimeError(
            "Migration 0013 gives existing encounters their record keys, which needs the "
            "pepper: run it through `flask db upgrade` with OUTREACH_PEPPER set."
        )
    update = (
        sa.update(encounters)
        .where(encounters.c.id == sa.bindparam("encounter_id"))
        .values(record_key=sa.bindparam("key"))
    )
    after: uuid.UUID | None = None
    while True:
        statement = sa.select(encounters.c.id).order_by(encounters.c.id).limit(BATCH)
        if after is not None:
            statement = statement.where(encounters.c.id > after)
        ids = list(connection.scalars(statement))
        if not ids:
            return
        connection.execute(update, [{"encounter_id": i, "key": record_key(pepper, i)} for i in ids])
        after = ids[-1]
