"""An encounter's sector is its hexagon's; coverage comes from the shifts alone.

Disclosure control (``services/disclosure.py``): an encounter's sector is now the
sector of its hexagon's centre (``geo.sector_of_cell``), so that hexagon and sector
together say no more than the hexagon. Existing encounters move here, with their
content hashes (a phone resending one then still gets ``duplicate``); the rollups are
rebuilt by ``flask db upgrade`` (``migrate.REBUILDS``). Coverage reports the sectors
shifts planned, never where people were met: ``shift_sectors`` goes.

A downgrade brings back an empty ``shift_sectors``; sectors stay those of the
hexagons (the points they were taken from were never stored).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 16:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from outreach.models.base import UTCDateTime
from outreach.services.geo import sector_of_cell
from outreach.services.sync import content_hash, encounter_content

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000


def upgrade() -> None:
    _move_encounters()
    op.drop_table("shift_sectors")


def downgrade() -> None:
    op.create_table(
        "shift_sectors",
        sa.Column("shift_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("encounters", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shift_id"],
            ["shifts.id"],
            name=op.f("fk_shift_sectors_shift_id_shifts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shift_id", "sector", name=op.f("pk_shift_sectors")),
    )


def _move_encounters() -> None:
    """Each encounter whose sector is not its hexagon's takes it, with its new hash."""
    connection = op.get_bind()
    encounters = sa.table(
        "encounters", sa.column("id", sa.Uuid()), sa.column("sector"), sa.column("content_hash")
    )
    # Typed where the stored value must come back as Python objects.
    typed = sa.table(
        "encounters",
        sa.column("id", sa.Uuid()),
        sa.column("occurred_at", UTCDateTime()),
        sa.column("shift_id", sa.Uuid()),
        sa.column("cell", sa.String()),
        sa.column("sector", sa.String()),
        sa.column("setting", sa.String()),
        sa.column("people", sa.Integer()),
        sa.column("age_band", sa.String()),
        sa.column("gender", sa.String()),
        sa.column("first_contact", sa.Boolean()),
        sa.column("ref_hash", sa.String()),
        sa.column("kits", sa.JSON()),
        sa.column("services", sa.JSON()),
        sa.column("referrals", sa.JSON()),
    )
    update = (
        sa.update(encounters)
        .where(encounters.c.id == sa.bindparam("encounter_id"))
        .values(sector=sa.bindparam("new_sector"), content_hash=sa.bindparam("new_hash"))
    )
    after = None
    while True:
        statement = sa.select(*typed.c).order_by(typed.c.id).limit(BATCH)
        if after is not None:
            statement = statement.where(typed.c.id > after)
        rows = [dict(row._mapping) for row in connection.execute(statement)]
        if not rows:
            return
        moved = []
        for row in rows:
            sector = sector_of_cell(row["cell"])
            if sector != row["sector"]:
                row["sector"] = sector
                moved.append(
                    {
                        "encounter_id": row["id"],
                        "new_sector": sector,
                        "new_hash": content_hash(encounter_content(row)),
                    }
                )
        if moved:
            connection.execute(update, moved)
        after = rows[-1]["id"]
