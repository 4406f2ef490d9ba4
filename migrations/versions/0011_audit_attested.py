"""Audit event times taken under the chain lock, never before the head's (PostgreSQL).

The service read the clock before ``outreach_audit_append`` (0010) waited for the
chain lock, so two concurrent requests could be chained in the other order than
their times: times went backwards along the chain. The verifier now refuses that,
since a purge's record of its cut-off means something only if times are ordered.
The function now takes the event's canonical JSON in four pieces, around its ``at``
too, and writes ``greatest(requested time, head's time)``, formatted as
``services.audit`` formats times.

``audit_time_order`` records the head at this upgrade: a log written before it may
hold such steps back, and the verifier checks the order only after it.

Revision ID: 0011_audit_attested
Revises: 0010
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0011_audit_attested"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SIGNATURE = (
    "outreach_audit_append(bigint, boolean, bytea, bytea, bytea,"
    " timestamptz, uuid, uuid, text, text, text, json, integer, text, text, text)"
)
NEW_SIGNATURE = (
    "outreach_audit_append(bigint, boolean, bytea, bytea, bytea, bytea,"
    " timestamptz, uuid, uuid, text, text, text, json, integer, text, text, text)"
)

APPEND = """
CREATE FUNCTION outreach_audit_append(
    lock_key bigint,
    raise_generation boolean,
    payload_before_at bytea,
    payload_before_prev_hash bytea,
    payload_before_seq bytea,
    payload_after_seq bytea,
    p_at timestamptz,
    p_actor_user_id uuid,
    p_actor_org_id uuid,
    p_actor_role text,
    p_action text,
    p_target text,
    p_params json,
    p_records integer,
    p_outcome text,
    p_request_id text,
    p_client_hash text
) RETURNS bigint AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    head_at timestamptz;
    new_seq bigint;
    new_at timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    IF raise_generation THEN
        INSERT INTO rollup_generation (id, generation) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET generation = rollup_generation.generation + 1;
    END IF;
    -- Read after the lock is granted, on a fresh snapshot: the previous holder's event.
    SELECT e.seq, e.hash, e.at INTO head_seq, head_hash, head_at
    FROM audit_events e ORDER BY e.seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        -- Everything was purged: the chain goes on from the last checkpoint, if any.
        SELECT c.seq, c.hash INTO head_seq, head_hash
        FROM audit_checkpoints c ORDER BY c.seq DESC LIMIT 1;
    END IF;
    new_seq := coalesce(head_seq, 0) + 1;
    head_hash := coalesce(head_hash, repeat('0', 64));
    -- greatest() skips a NULL head time.
    new_at := greatest(p_at, head_at);
    INSERT INTO audit_events (seq, at, actor_user_id, actor_org_id, actor_role, action, target,
                              params, records, outcome, request_id, client_hash, prev_hash, hash)
    VALUES (new_seq, new_at, p_actor_user_id, p_actor_org_id, p_actor_role, p_action, p_target,
            p_params, p_records, p_outcome, p_request_id, p_client_hash, head_hash,
            encode(sha256(convert_to(head_hash, 'UTF8') || payload_before_at
                          || convert_to(to_char(new_at AT TIME ZONE 'UTC',
                                                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'UTF8')
                          || payload_before_prev_hash
                          || convert_to(head_hash, 'UTF8') || payload_before_seq
                          || convert_to(new_seq::text, 'UTF8') || payload_after_seq), 'hex'));
    RETURN new_seq;
END;
$$ LANGUAGE plpgsql VOLATILE
"""


def upgrade() -> None:
    op.create_table(
        "audit_time_order",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ordered_after", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_time_order")),
    )
    op.execute(
        "INSERT INTO audit_time_order (id, ordered_after)"
        " SELECT 1, coalesce(max(seq), 0) FROM audit_events"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
        op.execute(APPEND)


def downgrade() -> None:
    op.drop_table("audit_time_order")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {NEW_SIGNATURE}")
        op.execute(_previous_append())


def _previous_append() -> str:
    """0010's function, from its own file (revision files are not an importable package)."""
    path = Path(__file__).with_name("0010_audit_append_in_one_call.py")
    spec = importlib.util.spec_from_file_location("outreach_migration_0010", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.APPEND)
