"""A generation per organisation and span of the map's measures.

Every change of one organisation's hexagon measures over a day, a week or a month
raises that span's number, so a worker keeps the span rows it read and reads again
only the spans that changed: a map right after a sync re-reads today's spans, not a
year's. Spans already stored start at generation 1.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollup_span_generations",
        sa.Column("span", sa.String(length=8), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "span", "start", "organisation_id", name=op.f("pk_rollup_span_generations")
        ),
    )
    op.execute(
        "INSERT INTO rollup_span_generations (span, start, organisation_id, generation) "
        "SELECT DISTINCT span, start, organisation_id, 1 FROM rollup_cell_spans"
    )


def downgrade() -> None:
    op.drop_table("rollup_span_generations")
