"""A shift's key is (organisation, id): each association has its own shift id space.

A phone sending another association's shift id was answered ``conflict``, which told
the sender that the id exists elsewhere. With the organisation in the key, that id is
simply a new shift of the sender's association; the other's row is never touched. An
encounter points at its shift by (organisation, shift id), so it can only name a shift
of its own association.

Nothing counted changes (rollups copy the shift's kind, never its id), so the rollups
need no rebuild.

On SQLite the batch mode copies a table into a new one and drops the old one, and a
dropped parent takes the rows of a cascading child with it, or refuses over a
restricting one (foreign keys are on): the encounters' link to their shift comes off
before ``shifts`` is copied, and the versions' link to their encounter comes off while
``encounters`` is copied.

A downgrade refuses while two associations hold one shift id: a single id space would
have to merge or drop one of them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 21:00:00
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from alembic import op

from outreach.migrate import DowngradeRefused, shared_ids_refusal

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VERSIONS_FK = "fk_encounter_versions_organisation_id_encounters"
OLD_SHIFT_FK = "fk_encounters_shift_id_shifts"
NEW_SHIFT_FK = "fk_encounters_organisation_id_shifts"
OLD_SHIFT_INDEX = "ix_encounters_shift_id"
NEW_SHIFT_INDEX = "ix_encounters_shift"


@contextmanager
def _versions_unlinked() -> Iterator[None]:
    """The versions' link to their encounter is off while ``encounters`` is copied."""
    with op.batch_alter_table("encounter_versions") as batch:
        batch.drop_constraint(VERSIONS_FK, type_="foreignkey")
    yield
    with op.batch_alter_table("encounter_versions") as batch:
        batch.create_foreign_key(
            VERSIONS_FK,
            "encounters",
            ["organisation_id", "encounter_id"],
            ["organisation_id", "id"],
            ondelete="CASCADE",
        )


def upgrade() -> None:
    with _versions_unlinked():
        with op.batch_alter_table("encounters") as batch:
            batch.drop_constraint(OLD_SHIFT_FK, type_="foreignkey")
            batch.drop_index(OLD_SHIFT_INDEX)
        with op.batch_alter_table("shifts") as batch:
            batch.drop_constraint("pk_shifts", type_="primary")
            batch.create_primary_key("pk_shifts", ["organisation_id", "id"])
        with op.batch_alter_table("encounters") as batch:
            batch.create_index(NEW_SHIFT_INDEX, ["organisation_id", "shift_id"])
            batch.create_foreign_key(
                NEW_SHIFT_FK,
                "shifts",
                ["organisation_id", "shift_id"],
                ["organisation_id", "id"],
                ondelete="RESTRICT",
            )


def downgrade() -> None:
    refusal = shared_ids_refusal(op.get_bind(), "0017")
    if refusal is not None:
        raise DowngradeRefused(refusal)
    with _versions_unlinked():
        with op.batch_alter_table("encounters") as batch:
            batch.drop_constraint(NEW_SHIFT_FK, type_="foreignkey")
            batch.drop_index(NEW_SHIFT_INDEX)
        with op.batch_alter_table("shifts") as batch:
            batch.drop_constraint("pk_shifts", type_="primary")
            batch.create_primary_key("pk_shifts", ["id"])
        with op.batch_alter_table("encounters") as batch:
            batch.create_index(OLD_SHIFT_INDEX, ["shift_id"])
            batch.create_foreign_key(
                OLD_SHIFT_FK, "shifts", ["shift_id"], ["id"], ondelete="RESTRICT"
            )
