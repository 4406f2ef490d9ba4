"""The append-only, hash-chained audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import Base, UTCDateTime

# Any fixed 63-bit number: the PostgreSQL advisory lock every audit append takes, and
# every change of the counters' generation before it (``services.audit``).
AUDIT_LOCK_KEY = 0x6F75747265616368


class AuditEvent(Base):
    """One access to data, login, refusal or change; see ``services.audit``.

    Actor columns are copies, not foreign keys: the log must outlive the accounts
    it mentions and must never be rewritten by a cascade.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_org_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    records: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_hash: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditCheckpoint(Base):
    """Where the retention purge cut the chain: the last purged event's sequence and hash.

    The verifier starts from the newest checkpoint, so the remaining events still
    verify after old ones are purged. Append-only like the log itself.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    purged: Mapped[int] = mapped_column(BigInteger)


class AuditTimeOrder(Base):
    """From which event on the chain's times never go backwards (migration 0011).

    Events appended before it may be a few milliseconds out of time order (their
    time was read before the chain lock was taken); the verifier checks the order
    only after ``ordered_after``. One row, or none (0).
    """

    __tablename__ = "audit_time_order"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ordered_after: Mapped[int] = mapped_column(BigInteger)
