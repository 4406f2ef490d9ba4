"""Rollups whose reads do not grow with the data: per-organisation day, week and month
counters, and a bitmap of the days each person ref was met per organisation and year.

Derived data like the other rollups: the tables start empty, and a database that
already holds encounters needs ``flask rollups rebuild`` (the upgrade says so).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 07:40:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

DAY_WORDS = ("days_0", "days_1", "days_2", "days_3", "days_4", "days_5")


def upgrade() -> None:
    op.create_table(
        "rollup_totals",
        sa.Column("span", sa.String(length=8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("basis", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "span", "start", "organisation_id", "metric", name=op.f("pk_rollup_totals")
        ),
    )
    op.create_index("ix_rollup_totals_series", "rollup_totals", ["metric", "span", "start"])
    op.create_table(
        "rollup_person_years",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("ref_hash", sa.String(length=64), nullable=False),
        *(sa.Column(word, sa.BigInteger(), nullable=False) for word in DAY_WORDS),
        sa.PrimaryKeyConstraint(
            "year", "organisation_id", "ref_hash", name=op.f("pk_rollup_person_years")
        ),
    )
    if op.get_bind().execute(sa.text("SELECT 1 FROM encounters LIMIT 1")).first() is not None:
        log.warning("Encounters are stored: run `flask rollups rebuild` to fill the new rollups.")


def downgrade() -> None:
    op.drop_table("rollup_person_years")
    op.drop_index("ix_rollup_totals_series", table_name="rollup_totals")
    op.drop_table("rollup_totals")
