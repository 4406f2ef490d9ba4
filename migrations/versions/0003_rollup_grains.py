"""Rollups with a basis per counter, at sector and hexagon grains.

Rollups are derived data: this revision replaces the tables empty, and a database
that already holds encounters gets its aggregates back with ``flask rollups rebuild``
(the upgrade says so when it finds any).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 07:36:16.665465
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")


def _grain() -> list[sa.Column[object]]:
    return [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("shift_kind", sa.String(length=16), nullable=False),
    ]


def _counter() -> list[sa.Column[object]]:
    return [
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("basis", sa.BigInteger(), nullable=False),
    ]


def _warn_if_data() -> None:
    if op.get_bind().execute(sa.text("SELECT 1 FROM encounters LIMIT 1")).first() is not None:
        log.warning("Encounters are stored: run `flask rollups rebuild` to recompute aggregates.")


def upgrade() -> None:
    op.drop_table("rollup_counts")
    op.drop_table("rollup_people")
    op.create_table(
        "rollup_sectors",
        *_grain(),
        *_counter(),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "shift_kind",
            "metric",
            name=op.f("pk_rollup_sectors"),
        ),
    )
    op.create_table(
        "rollup_cells",
        *_grain(),
        sa.Column("cell", sa.String(length=16), nullable=False),
        *_counter(),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "shift_kind",
            "cell",
            "metric",
            name=op.f("pk_rollup_cells"),
        ),
    )
    op.create_table(
        "rollup_people",
        *_grain(),
        sa.Column("ref_hash", sa.String(length=64), nullable=False),
        sa.Column("encounters", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "shift_kind",
            "ref_hash",
            name=op.f("pk_rollup_people"),
        ),
    )
    _warn_if_data()


def downgrade() -> None:
    op.drop_table("rollup_people")
    op.drop_table("rollup_cells")
    op.drop_table("rollup_sectors")
    op.create_table(
        "rollup_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("shift_kind", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "cell",
            "shift_kind",
            "metric",
            name=op.f("pk_rollup_counts"),
        ),
    )
    op.create_table(
        "rollup_people",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("shift_kind", sa.String(length=16), nullable=False),
        sa.Column("ref_hash", sa.String(length=64), nullable=False),
        sa.Column("encounters", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "cell",
            "shift_kind",
            "ref_hash",
            name=op.f("pk_rollup_people"),
        ),
    )
    _warn_if_data()
