"""Audit appends take the chain lock and read the head in one round trip (PostgreSQL).

Every request appends an audit event, and each append took three round trips: the
advisory lock, the head, the insert. ``outreach_audit_lock_head`` does the first two.
It is VOLATILE, so its query takes a fresh snapshot after the lock is granted and
sees the head the previous holder committed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 07:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCK_HEAD = """
CREATE FUNCTION outreach_audit_lock_head(lock_key bigint, OUT seq bigint, OUT hash text)
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT e.seq, e.hash INTO seq, hash FROM audit_events e ORDER BY e.seq DESC LIMIT 1;
END;
$$ LANGUAGE plpgsql VOLATILE
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCK_HEAD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION outreach_audit_lock_head(bigint)")
