"""The audit append no longer raises the counters' generation; generations are tokens.

The writer of the counters marks what it changed itself, before the audit event
(``services/writes.py``): each span's generation and the counters' become a random
token written by that transaction, so a value names one state and a restored database
never hands a worker a value it already trusts. ``outreach_audit_append`` loses its
``raise_generation`` argument. The stored numbers stay: any value a worker kept was
read from this database, and the next write replaces it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SIGNATURE = (
    "outreach_audit_append(bigint, boolean, bytea, bytea, bytea, bytea,"
    " timestamptz, uuid, uuid, text, text, text, json, integer, text, text, text)"
)
NEW_SIGNATURE = (
    "outreach_audit_append(bigint, bytea, bytea, bytea, bytea,"
    " timestamptz, uuid, uuid, text, text, text, json, integer, text, text, text)"
)
GENERATION_RAISE = """    IF raise_generation THEN
        INSERT INTO rollup_generation (id, generation) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET generation = rollup_generation.generation + 1;
    END IF;
"""


def _previous_append() -> str:
    """0011's function, from its own file (revision files are not an importable package)."""
    path = Path(__file__).with_name("0011_audit_attested.py")
    spec = importlib.util.spec_from_file_location("outreach_migration_0011", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.APPEND)


def _append() -> str:
    previous = _previous_append()
    assert GENERATION_RAISE in previous
    return previous.replace("    raise_generation boolean,\n", "").replace(GENERATION_RAISE, "")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {OLD_SIGNATURE}")
        op.execute(_append())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {NEW_SIGNATURE}")
        op.execute(_previous_append())
