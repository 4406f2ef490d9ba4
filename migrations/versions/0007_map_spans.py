"""Maps whose reads do not grow with the days: the map's measures per organisation and
hexagon over each day, week and month, side by side in one row; and the generation of
the counters, which every change raises, so a published map is reused until it is.

Derived data like the other rollups: the table starts empty, and a database that
already holds encounters needs ``flask rollups rebuild`` (the upgrade says so).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

MEASURES = ("people", "kits", "kits_basis", "referrals", "referrals_basis", "encounters")


def upgrade() -> None:
    op.create_table(
        "rollup_cell_spans",
        sa.Column("span", sa.String(length=8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in MEASURES),
        sa.PrimaryKeyConstraint(
            "span", "start", "organisation_id", "cell", name=op.f("pk_rollup_cell_spans")
        ),
    )
    op.create_table(
        "rollup_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_generation")),
    )
    if op.get_bind().execute(sa.text("SELECT 1 FROM encounters LIMIT 1")).first() is not None:
        log.warning("Encounters are stored: run `flask rollups rebuild` to fill the new rollups.")


def downgrade() -> None:
    op.drop_table("rollup_generation")
    op.drop_table("rollup_cell_spans")
