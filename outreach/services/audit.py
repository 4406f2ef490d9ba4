"""The audit writer and verifier: an append-only, hash-chained log.

Each event's hash is ``sha256(prev_hash || canonical_json(event))`` where the
canonical JSON has sorted keys and covers every stored field but the hash itself,
so editing, deleting, reordering or inserting an event breaks the chain at that
event. Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock,
on SQLite by the immediate transaction every write takes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from outreach.models import AUDIT_LOCK_KEY, AuditCheckpoint, AuditEvent, utcnow
from outreach.services.context import CallContext
from outreach.services.rollups import raise_generation

GENESIS_HASH = "0" * 64
# Parameters dropped whatever route sends them: secrets, coordinates, raw refs.
FORBIDDEN_PARAM_KEYS = frozenset(
    {
        "password",
        "current_password",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "lat",
        "lon",
        "lng",
        "latitude",
        "longitude",
        "accuracy_m",
        "location",
        "ref",
        "pepper",
    }
)
MAX_PARAM_TEXT = 200
VERIFY_BATCH = 20_000


class Outcome:
    """The closed set of outcomes an event records."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"
    INVALID = "invalid"


def sanitise_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keep what helps an auditor understand a call and nothing that identifies or unlocks."""
    if not params:
        return {}
    clean: dict[str, Any] = {}
    for key, value in params.items():
        if key.lower() in FORBIDDEN_PARAM_KEYS:
            continue
        clean[key] = _sanitise_value(value)
    return clean


def _sanitise_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Mapping):
        return sanitise_params(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_sanitise_value(item) for item in value][:50]
    return str(value)[:MAX_PARAM_TEXT]


def _iso(at: datetime) -> str:
    # isoformat is several times faster than strftime, and verification calls this for
    # every event of the log.
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _uuid_text(value: uuid.UUID | str | None) -> str | None:
    return None if value is None else str(value)


def canonical_payload(fields: Mapping[Any, Any]) -> bytes:
    """The canonical JSON of an event's fields, the bytes its hash covers."""
    return _canonical_json(_text_fields(fields))


def _text_fields(fields: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "seq": fields["seq"],
        "at": _iso(fields["at"]),
        "actor_user_id": _uuid_text(fields["actor_user_id"]),
        "actor_org_id": _uuid_text(fields["actor_org_id"]),
        "actor_role": fields["actor_role"],
        "action": fields["action"],
        "target": fields["target"],
        "params": fields["params"],
        "records": fields["records"],
        "outcome": fields["outcome"],
        "request_id": fields["request_id"],
        "client_hash": fields["client_hash"],
        "prev_hash": fields["prev_hash"],
    }


def _canonical_json(text_fields: dict[str, Any]) -> bytes:
    # Fields already in their canonical text form: sorted keys, compact, UTF-8.
    return orjson.dumps(text_fields, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, payload: bytes) -> str:
    """``sha256(prev_hash || payload)`` as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + payload).hexdigest()


# A Core insert into the table: the entity's (the ORM's bulk insert machinery) cost
# more than the rest of an append.
_APPEND = insert(cast(Table, AuditEvent.__table__))


# On PostgreSQL, one call under the chain lock (migration 0010): the counters'
# generation if asked, the head, the hash and the insert. The lock is held to the
# commit and every audited request queues on it, so it is held for one round trip.
_APPEND_ON_POSTGRESQL = text(
    "SELECT outreach_audit_append(:key, :raise_generation, :before_prev_hash, :before_seq,"
    " :after_seq, :at, :actor_user_id, :actor_org_id, :actor_role, :action, :target,"
    " CAST(:params AS json), :records, :outcome, :request_id, :client_hash)"
)


@dataclass(frozen=True)
class ChainHead:
    """The newest event's sequence number and hash (0 and the genesis hash when empty)."""

    seq: int
    hash: str


def read_head(session: Session) -> ChainHead:
    """The current head of the chain."""
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    if row is None:
        # Everything was purged: the chain goes on from the last checkpoint.
        return latest_checkpoint(session)
    return ChainHead(seq=row.seq, hash=row.hash)


def record(
    session: Session,
    ctx: CallContext,
    action: str,
    *,
    outcome: str = Outcome.SUCCESS,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    records: int = 0,
    counters_changed: bool = False,
) -> None:
    """Append one event inside the caller's open transaction.

    Call it last in a use case: the chain lock is held until the transaction ends, so
    taking it late keeps concurrent writers from queueing behind unrelated work. A use
    case that changed the rollup counters says so with ``counters_changed``: their
    generation is raised here, under the chain lock (``rollups.raise_generation``).
    """
    principal = ctx.principal
    fields: dict[str, Any] = {
        "at": utcnow(),
        "actor_user_id": principal.user_id if principal else None,
        "actor_org_id": principal.organisation_id if principal else None,
        "actor_role": principal.role.value if principal else ("operator" if ctx.operator else None),
        "action": action,
        "target": target[:200] if target else None,
        "params": sanitise_params(params),
        "records": records,
        "outcome": outcome,
        "request_id": ctx.request_id,
        "client_hash": ctx.client_hash,
    }
    if session.get_bind().dialect.name == "postgresql":
        before_prev_hash, before_seq, after_seq = payload_around_head(fields)
        session.execute(
            _APPEND_ON_POSTGRESQL,
            {
                **fields,
                "params": orjson.dumps(fields["params"]).decode(),
                "key": AUDIT_LOCK_KEY,
                "raise_generation": counters_changed,
                "before_prev_hash": before_prev_hash,
                "before_seq": before_seq,
                "after_seq": after_seq,
            },
        )
        return
    # SQLite has one writer at a time: this transaction is the lock.
    if counters_changed:
        raise_generation(session)
    head = read_head(session)
    fields["seq"], fields["prev_hash"] = head.seq + 1, head.hash
    fields["hash"] = chain_hash(head.hash, canonical_payload(fields))
    session.execute(_APPEND, fields)


def payload_around_head(fields: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    """An event's canonical JSON but for its ``prev_hash`` and ``seq``, which only the
    head decides: the bytes before the one, between the two, and after the other.

    The keys sort as ``...params, prev_hash, records, request_id, seq, target``, and
    the JSON of a hash and of a number are the hex and the digits themselves.
    """
    text_fields = _text_fields({**fields, "seq": 0, "prev_hash": ""})
    after = {name: text_fields.pop(name) for name in _AFTER_PREV_HASH}
    del text_fields["prev_hash"]
    before_prev_hash = _canonical_json(text_fields)[:-1] + b',"prev_hash":"'
    before_seq = (
        b'","records":'
        + orjson.dumps(after["records"])
        + b',"request_id":'
        + orjson.dumps(after["request_id"])
        + b',"seq":'
    )
    return before_prev_hash, before_seq, b',"target":' + orjson.dumps(after["target"]) + b"}"


_AFTER_PREV_HASH = ("records", "request_id", "seq", "target")


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found: ``first_broken_seq`` is ``None`` when ``ok``."""

    ok: bool
    checked: int
    first_broken_seq: int | None
    head_hash: str
    head_seq: int
    reason: str | None = None


_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor_user_id,
    AuditEvent.actor_org_id,
    AuditEvent.actor_role,
    AuditEvent.action,
    AuditEvent.target,
    AuditEvent.params,
    AuditEvent.records,
    AuditEvent.outcome,
    AuditEvent.request_id,
    AuditEvent.client_hash,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def latest_checkpoint(session: Session) -> ChainHead:
    """Where the chain starts: after the newest purge checkpoint, or at the genesis."""
    row = session.execute(
        select(AuditCheckpoint.seq, AuditCheckpoint.hash)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return ChainHead(seq=0, hash=GENESIS_HASH)
    return ChainHead(seq=row.seq, hash=row.hash)


# The text fields of an event (its canonical form) and the hash stored with it.
_Event = tuple[dict[str, Any], str]
_FIELD_NAMES = tuple(column.key for column in _COLUMNS if column.key != "hash")

# PostgreSQL formats the timestamp and the ids itself: parsing them into Python
# objects only to print them again was most of the verification's cost.
_PG_EVENTS = """
SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       actor_user_id::text, actor_org_id::text, actor_role, action, target, params::text,
       records, outcome, request_id, client_hash, prev_hash, hash
FROM audit_events WHERE seq > %s ORDER BY seq LIMIT %s
"""


def _events(session: Session, after: int) -> Iterator[_Event]:
    """Every event after ``after`` in order, in batches."""
    if session.get_bind().dialect.name == "postgresql":
        yield from _postgresql_events(session, after)
        return
    connection = session.connection()
    while True:
        batch = connection.execute(
            select(*_COLUMNS)
            .where(AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
            .limit(VERIFY_BATCH)
        ).all()
        if not batch:
            return
        for row in batch:
            yield _text_fields(row._mapping), row.hash
        after = batch[-1].seq


def _postgresql_events(session: Session, after: int) -> Iterator[_Event]:
    # The next batch is fetched while this one is hashed: the server's work and ours
    # overlap on two cores.
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]

    def fetch(after: int) -> list[tuple[Any, ...]]:
        cursor.execute(_PG_EVENTS, (after, VERIFY_BATCH), prepare=True)
        return cursor.fetchall()  # type: ignore[no-any-return]

    names, loads = _FIELD_NAMES, orjson.loads
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        batch = fetch(after)
        while batch:
            upcoming = prefetch.submit(fetch, batch[-1][0])
            for row in batch:
                fields = dict(zip(names, row, strict=False))
                fields["params"] = loads(fields["params"])
                yield fields, row[-1]
            batch = upcoming.result()


# How many events ``verify`` checks between two calls of its ``progress``.
VERIFY_PROGRESS_STEP = 1_000


def verify(
    session: Session,
    expected_head: ChainHead | None = None,
    progress: Callable[[int], None] = lambda _n: None,
) -> VerifyResult:
    """Recompute the chain from its start (or last purge checkpoint); report the first break.

    ``expected_head`` is a head handed out earlier: the chain must still contain that
    event with that hash, which catches truncation of the newest events. ``progress``
    hears how many more events were checked, every ``VERIFY_PROGRESS_STEP``.
    """
    start = latest_checkpoint(session)
    prev_hash, expected_seq, checked = start.hash, start.seq + 1, 0
    expected_found = expected_head is None or expected_head.seq == 0
    if expected_head is not None and 0 < expected_head.seq <= start.seq:
        if expected_head.seq < start.seq or expected_head.hash != start.hash:
            return _broken(
                checked,
                expected_head.seq,
                prev_hash,
                f"the head handed out was purged (the chain now starts after event {start.seq}):"
                " hand out a new head after each purge",
            )
        expected_found = True
    for fields, stored_hash in _events(session, after=start.seq):
        seq = fields["seq"]
        if seq != expected_seq:
            return _broken(checked, seq, prev_hash, f"expected event {expected_seq}, found {seq}")
        if fields["prev_hash"] != prev_hash:
            return _broken(checked, seq, prev_hash, "prev_hash does not match the event before")
        if chain_hash(prev_hash, _canonical_json(fields)) != stored_hash:
            return _broken(checked, seq, prev_hash, "content does not match its hash")
        if expected_head is not None and seq == expected_head.seq:
            if stored_hash != expected_head.hash:
                return _broken(checked, seq, prev_hash, "differs from the head handed out")
            expected_found = True
        prev_hash, expected_seq, checked = stored_hash, seq + 1, checked + 1
        if checked % VERIFY_PROGRESS_STEP == 0:
            progress(VERIFY_PROGRESS_STEP)
    progress(checked % VERIFY_PROGRESS_STEP)
    if not expected_found and expected_head is not None:
        return _broken(
            checked, expected_head.seq, prev_hash, "the chain ends before the head handed out"
        )
    return VerifyResult(
        ok=True,
        checked=checked,
        first_broken_seq=None,
        head_hash=prev_hash,
        head_seq=expected_seq - 1,
    )


def _broken(checked: int, seq: int, prev_hash: str, reason: str) -> VerifyResult:
    return VerifyResult(
        ok=False,
        checked=checked,
        first_broken_seq=seq,
        head_hash=prev_hash,
        head_seq=seq - 1,
        reason=reason,
    )
