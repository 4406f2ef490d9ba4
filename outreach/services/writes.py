"""The end of every write of the rollup counters: what it changed, marked for the
workers' caches, then its audit event.

A write of the counters (``rollups.Deltas.apply``, ``rollups.rebuild``, the retention
purge of person-days) returns a ``CountersChange``: which spans of which organisation
changed. The use case hands it to ``record``, its last call, which marks the change
and appends the audit event, in this order of locks:

1. the counter rows, already written, in key order;
2. each changed span's generation (``RollupSpanGeneration``), in key order;
3. the counters' generation (``RollupGeneration``), one row every such write takes;
4. the audit chain lock (``audit.record``), last, as in every use case.

A transaction that waits at one step holds nothing a later step's holder needs, so
writers queue instead of deadlocking. Every mark is a token drawn at random, the same
for every row one write marks: a value names one state of what it marks, never
another, even after the database is restored from a dump or replaced, so a worker
whose cache was made under a token other than the stored one reads again
(``readmodel``).

Forgetting is refused: a change is pending on its session from the moment it is
returned until ``record`` marks it, and a transaction with a pending change does not
commit (``UnfinishedWrite``).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import Table, event, update
from sqlalchemy.orm import Session, SessionTransaction

from outreach.models import RollupGeneration, RollupSpanGeneration
from outreach.models.dml import Upsert, upsert_all
from outreach.services import audit
from outreach.services.context import CallContext

# One organisation's span of days: ("day" | "week" | "month", its first day, the
# organisation's id).
ChangedSpan = tuple[str, date, uuid.UUID]
SPAN_KEY = ("span", "start", "organisation_id")
GENERATION_ROW = 1
_PENDING = "outreach.pending_counters_changes"


class UnfinishedWrite(RuntimeError):
    """A transaction changed the counters without ``record``: refused at its commit."""


@dataclass(frozen=True, eq=False)
class CountersChange:
    """What one write changed of the counters: ``spans``, and every span starting
    before ``before`` when given (``date.max``: every span there is)."""

    spans: frozenset[ChangedSpan] = field(default_factory=frozenset)
    before: date | None = None

    def __bool__(self) -> bool:
        return bool(self.spans) or self.before is not None


NOTHING = CountersChange()


def changed(
    session: Session, spans: Iterable[ChangedSpan] = (), before: date | None = None
) -> CountersChange:
    """The change of ``spans`` (and of every span starting ``before``) that the caller
    just wrote in ``session``'s transaction, pending until ``record`` marks it."""
    change = CountersChange(frozenset(spans), before)
    if change:
        _pending(session).append(change)
    return change


def record(
    session: Session,
    ctx: CallContext,
    action: str,
    change: CountersChange,
    *,
    outcome: str = audit.Outcome.SUCCESS,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    records: int = 0,
) -> None:
    """Mark ``change`` and append the audit event (``audit.record``): the last call of
    a use case that wrote counters, inside its transaction."""
    pending = _pending(session)
    if change:
        if change not in pending:
            raise UnfinishedWrite("this change is not pending on this session")
        pending.remove(change)
        _mark(session, change, new_token())
    if pending:
        raise UnfinishedWrite(f"{len(pending)} other change(s) of the counters are pending")
    audit.record(
        session, ctx, action, outcome=outcome, target=target, params=params, records=records
    )


def new_token() -> int:
    """A random positive 63-bit number: a stored generation, never one before it."""
    return secrets.randbits(63) or 1


def _mark(session: Session, change: CountersChange, token: int) -> None:
    if change.before is not None:
        session.execute(
            update(RollupSpanGeneration)
            .where(RollupSpanGeneration.start < change.before)
            .values(generation=token)
        )
    rows = [
        {**dict(zip(SPAN_KEY, key, strict=True)), "generation": token}
        for key in sorted(change.spans)
    ]
    upsert_all(
        session,
        [
            Upsert(_SPAN_GENERATIONS, SPAN_KEY, ("generation",), rows, "set"),
            Upsert(
                _GENERATION,
                ("id",),
                ("generation",),
                [{"id": GENERATION_ROW, "generation": token}],
                "set",
            ),
        ],
    )


_SPAN_GENERATIONS = cast(Table, RollupSpanGeneration.__table__)
_GENERATION = cast(Table, RollupGeneration.__table__)


def _pending(session: Session) -> list[CountersChange]:
    pending: list[CountersChange] = session.info.setdefault(_PENDING, [])
    return pending


@event.listens_for(Session, "before_commit")
def _refuse_unfinished(session: Session) -> None:
    if session.info.get(_PENDING):
        raise UnfinishedWrite(
            "the counters changed but their change was never marked: end the use case"
            " with writes.record"
        )


@event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: SessionTransaction) -> None:
    # A rolled back transaction's changes were never written.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
