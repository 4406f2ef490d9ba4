"""An encounter's key is (organisation, id): each association has its own id space.

A phone resending another association's encounter id was answered ``conflict``, which
told the sender that the id exists elsewhere. With the organisation in the key, that
id is simply a new encounter of the sender's association; the other's row is never
touched. ``encounter_versions`` gains the organisation to point at the whole key.

Nothing counted changes (record keys stay keyed hashes of the id), so the rollups
need no rebuild.

On SQLite the batch mode copies ``encounters`` into a new table and drops the old
one, and a dropped parent takes the rows of a cascading child with it (foreign keys
are on): the versions' foreign key is taken off before and put back after.

A downgrade refuses while two associations hold one id: a single id space would have
to merge or drop one of them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from outreach.migrate import DowngradeRefused, shared_ids_refusal

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_VERSIONS_FK = "fk_encounter_versions_encounter_id_encounters"
NEW_VERSIONS_FK = "fk_encounter_versions_organisation_id_encounters"
OLD_VERSIONS_INDEX = "ix_encounter_versions_encounter_id"
NEW_VERSIONS_INDEX = "ix_encounter_versions_encounter"


def upgrade() -> None:
    with op.batch_alter_table("encounter_versions") as batch:
        batch.drop_constraint(OLD_VERSIONS_FK, type_="foreignkey")
        batch.drop_index(OLD_VERSIONS_INDEX)
        batch.add_column(sa.Column("organisation_id", sa.Uuid(), nullable=True))
    versions = sa.table(
        "encounter_versions",
        sa.column("encounter_id", sa.Uuid()),
        sa.column("organisation_id", sa.Uuid()),
    )
    encounters = sa.table(
        "encounters", sa.column("id", sa.Uuid()), sa.column("organisation_id", sa.Uuid())
    )
    # Ids are still unique here: each version takes its encounter's organisation.
    op.execute(
        versions.update().values(
            organisation_id=sa.select(encounters.c.organisation_id)
            .where(encounters.c.id == versions.c.encounter_id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table("encounters") as batch:
        batch.drop_constraint("pk_encounters", type_="primary")
        batch.create_primary_key("pk_encounters", ["organisation_id", "id"])
    with op.batch_alter_table("encounter_versions") as batch:
        batch.alter_column("organisation_id", existing_type=sa.Uuid(), nullable=False)
        batch.create_index(NEW_VERSIONS_INDEX, ["organisation_id", "encounter_id"])
        batch.create_foreign_key(
            NEW_VERSIONS_FK,
            "encounters",
            ["organisation_id", "encounter_id"],
            ["organisation_id", "id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    refusal = shared_ids_refusal(op.get_bind(), "0016")
    if refusal is not None:
        raise DowngradeRefused(refusal)
    with op.batch_alter_table("encounter_versions") as batch:
        batch.drop_constraint(NEW_VERSIONS_FK, type_="foreignkey")
        batch.drop_index(NEW_VERSIONS_INDEX)
        batch.drop_column("organisation_id")
    with op.batch_alter_table("encounters") as batch:
        batch.drop_constraint("pk_encounters", type_="primary")
        batch.create_primary_key("pk_encounters", ["id"])
    with op.batch_alter_table("encounter_versions") as batch:
        batch.create_index(OLD_VERSIONS_INDEX, ["encounter_id"])
        batch.create_foreign_key(
            OLD_VERSIONS_FK, "encounters", ["encounter_id"], ["id"], ondelete="CASCADE"
        )
