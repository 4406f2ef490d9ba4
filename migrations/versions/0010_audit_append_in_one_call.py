"""Audit appends in one round trip, with the counters' generation (PostgreSQL).

Every audited request took the chain lock and read the head in one call
(``outreach_audit_lock_head``, 0006), hashed the event in Python, then inserted it;
a request that changed the counters raised their generation in a round trip before.
The chain lock is held from the first of these to the commit, and every audited
request in the deployment queues on it. ``outreach_audit_append`` does all of it in
one call under the lock: the service sends the event's canonical JSON in the three
pieces around its ``prev_hash`` and ``seq``, which only the head decides, and the
function fills them in and hashes the whole as ``services.audit.chain_hash`` does.
The verifier still recomputes every hash in Python from the stored fields.

Raising the generation under the chain lock also fixes one order for every
transaction that takes both: the chain lock, then the generation row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND = """
CREATE FUNCTION outreach_audit_append(
    lock_key bigint,
    raise_generation boolean,
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
    new_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    IF raise_generation THEN
        INSERT INTO rollup_generation (id, generation) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET generation = rollup_generation.generation + 1;
    END IF;
    -- Read after the lock is granted, on a fresh snapshot: the previous holder's event.
    SELECT e.seq, e.hash INTO head_seq, head_hash FROM audit_events e ORDER BY e.seq DESC LIMIT 1;
    IF head_seq IS NULL THEN
        -- Everything was purged: the chain goes on from the last checkpoint, if any.
        SELECT c.seq, c.hash INTO head_seq, head_hash
        FROM audit_checkpoints c ORDER BY c.seq DESC LIMIT 1;
    END IF;
    new_seq := coalesce(head_seq, 0) + 1;
    head_hash := coalesce(head_hash, repeat('0', 64));
    INSERT INTO audit_events (seq, at, actor_user_id, actor_org_id, actor_role, action, target,
                              params, records, outcome, request_id, client_hash, prev_hash, hash)
    VALUES (new_seq, p_at, p_actor_user_id, p_actor_org_id, p_actor_role, p_action, p_target,
            p_params, p_records, p_outcome, p_request_id, p_client_hash, head_hash,
            encode(sha256(convert_to(head_hash, 'UTF8') || payload_before_prev_hash
                          || convert_to(head_hash, 'UTF8') || payload_before_seq
                          || convert_to(new_seq::text, 'UTF8') || payload_after_seq), 'hex'));
    RETURN new_seq;
END;
$$ LANGUAGE plpgsql VOLATILE
"""

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
        op.execute(APPEND)
        op.execute("DROP FUNCTION outreach_audit_lock_head(bigint)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCK_HEAD)
        op.execute(
            "DROP FUNCTION outreach_audit_append(bigint, boolean, bytea, bytea, bytea,"
            " timestamptz, uuid, uuid, text, text, text, json, integer, text, text, text)"
        )
