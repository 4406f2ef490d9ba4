"""Audit checkpoints for the retention purge; the audit log append-only in PostgreSQL.

On PostgreSQL, triggers refuse any UPDATE of an audit event or checkpoint, and any
DELETE or TRUNCATE of audit events except inside a transaction that set
``outreach.audit_purge`` to ``on`` (the retention purge does, with ``SET LOCAL``).
This protects the log from the application's own mistakes and from casual edits;
a database superuser can still disable triggers, which is what the hash chain and
the head handed to the auditor are for.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 08:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE FUNCTION outreach_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') AND TG_TABLE_NAME = 'audit_events'
       AND current_setting('outreach.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""
TABLES = ("audit_events", "audit_checkpoints")


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_checkpoints_seq")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(APPEND_ONLY)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION outreach_audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION outreach_audit_append_only()"
        )


def downgrade() -> None:
    purges = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_checkpoints")).scalar()
    if purges:
        # Without its checkpoints, a purged chain no longer verifies: evidence lost.
        raise RuntimeError(
            f"refusing to downgrade below 0004: audit_checkpoints holds {purges} retention"
            " purge checkpoint(s), without which the remaining audit log no longer verifies"
            " (and no downgrade ever brings them back). Keep this revision, or restore a"
            " database from before the first purge."
        )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS outreach_audit_append_only()")
    op.drop_table("audit_checkpoints")
