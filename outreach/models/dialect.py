"""What the two engines do differently, one function each, so use cases never ask which runs.

PostgreSQL runs writers side by side and serialises them with locks. SQLite runs one
writer at a time: every transaction begins ``IMMEDIATE`` (``engine.py``), so it holds
the database's one write lock from its start, and a lock PostgreSQL needs is already
held there. PostgreSQL alone enforces the audit log's append-only triggers (migration
0004); on SQLite the hash chain is the only guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, get_args

from sqlalchemy import text
from sqlalchemy.orm import Session

Engine = Literal["postgresql", "sqlite"]
_ENGINES = get_args(Engine)


def engine_of(session: Session) -> Engine:
    """The engine ``session`` runs on; any other is refused."""
    name = session.get_bind().dialect.name
    if name in _ENGINES:
        return cast(Engine, name)
    raise NotImplementedError(f"Outreach runs on PostgreSQL or SQLite, not {name}")


def hold_off_writers(session: Session, tables: Sequence[str]) -> None:
    """Let no other transaction write ``tables`` until this one ends: it waits for the
    writers already in them to commit, and later ones wait for it. Reads go on."""
    if engine_of(session) == "postgresql":
        session.execute(text(f"LOCK TABLE {', '.join(tables)} IN SHARE MODE"))


def allow_audit_purge(session: Session) -> None:
    """Let this transaction, and only it, delete audit events past the append-only
    trigger."""
    if engine_of(session) == "postgresql":
        session.execute(text("SET LOCAL outreach.audit_purge = 'on'"))
