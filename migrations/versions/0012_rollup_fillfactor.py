"""A fill factor of 80 on the rollup tables (PostgreSQL), as docs/scaling.md promised.

Every sync updates counter rows in place; room left on each page lets PostgreSQL keep
those updates on the page (HOT: no new index entries). The setting applies to pages
written from now on; ``VACUUM FULL`` (or pg_repack) rewrites the existing ones.

Revision ID: 0012_rollup_fillfactor
Revises: 0011_audit_attested
Create Date: 2026-12-04 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012_rollup_fillfactor"
down_revision: str | None = "0011_audit_attested"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL_FACTOR = 80
TABLES = (
    "rollup_sectors",
    "rollup_cells",
    "rollup_people",
    "rollup_totals",
    "rollup_cell_spans",
    "rollup_span_generations",
    "rollup_generation",
    "rollup_person_years",
    "shift_sectors",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = {FILL_FACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
