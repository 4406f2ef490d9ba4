"""The audit writer and verifier: an append-only, hash-chained log.

Each event's hash is ``sha256(prev_hash || canonical_json(event))`` where the
canonical JSON has sorted keys and covers every stored field but the hash itself,
so editing, deleting, reordering or inserting an event breaks the chain at that
event. Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock,
on SQLite by the immediate transaction every write takes. An event's time is taken
under that lock and never before its predecessor's, so times along the chain never
go backwards.

The retention purge cuts the chain's oldest events and leaves a checkpoint, which
counts only when the chain itself attests it: the purge's ``retention.checkpoint``
event, appended in the same transaction, names the checkpoint's sequence and hash,
the last purged event's time and the cut-off, and the cut-off must be what the
retention period allowed at that event's time. A checkpoint row on its own (which
anyone writing to the database could add) is not a reason to skip events.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from outreach.models import (
    AUDIT_LOCK_KEY,
    AuditCheckpoint,
    AuditEvent,
    AuditTimeOrder,
    driver,
    utcnow,
)
from outreach.models.dialect import engine_of
from outreach.services.context import CallContext

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
# The event each purge batch appends in the transaction that cuts the chain; and the
# one that closes a purge run, the only record in logs older than migration 0011.
CHECKPOINT_ACTION = "retention.checkpoint"
LEGACY_PURGE_ACTION = "retention.purge"
PURGE_ACTIONS = frozenset({CHECKPOINT_ACTION, LEGACY_PURGE_ACTION})


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


def iso_time(at: datetime) -> str:
    """A time as the chain writes it: UTC, microseconds, ``Z``."""
    return _iso(at)


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


# On PostgreSQL, one call under the chain lock (migration 0015): the head, the hash and
# the insert. The lock is held to the commit and every audited request queues on it, so
# it is held for one round trip.
_APPEND_ON_POSTGRESQL = text(
    "SELECT outreach_audit_append(:key, :before_at, :before_prev_hash,"
    " :before_seq, :after_seq, :at, :actor_user_id, :actor_org_id, :actor_role, :action,"
    " :target, CAST(:params AS json), :records, :outcome, :request_id, :client_hash)"
)


@dataclass(frozen=True)
class ChainHead:
    """The newest event's sequence number and hash (0 and the genesis hash when empty)."""

    seq: int
    hash: str


def read_head(session: Session) -> ChainHead:
    """The current head of the chain."""
    head, _at = _head_and_time(session)
    return head


def _head_and_time(session: Session) -> tuple[ChainHead, datetime | None]:
    row = session.execute(
        select(AuditEvent.seq, AuditEvent.hash, AuditEvent.at)
        .order_by(AuditEvent.seq.desc())
        .limit(1)
    ).first()
    if row is None:
        # Everything was purged: the chain goes on from the last checkpoint.
        return latest_checkpoint(session), None
    return ChainHead(seq=row.seq, hash=row.hash), row.at


def record(
    session: Session,
    ctx: CallContext,
    action: str,
    *,
    outcome: str = Outcome.SUCCESS,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    records: int = 0,
) -> None:
    """Append one event inside the caller's open transaction.

    Call it last in a use case: the chain lock is held until the transaction ends, so
    taking it late keeps concurrent writers from queueing behind unrelated work. A use
    case that changed the rollup counters ends with ``writes.record`` instead, which
    marks the change, then calls this.
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
    if engine_of(session) == "postgresql":
        before_at, before_prev_hash, before_seq, after_seq = payload_around_head(fields)
        driver.execute(
            session,
            _APPEND_ON_POSTGRESQL,
            {
                **fields,
                "params": orjson.dumps(fields["params"]).decode(),
                "key": AUDIT_LOCK_KEY,
                "before_at": before_at,
                "before_prev_hash": before_prev_hash,
                "before_seq": before_seq,
                "after_seq": after_seq,
            },
        )
        return
    # SQLite has one writer at a time: this transaction is the lock.
    head, head_at = _head_and_time(session)
    if head_at is not None and head_at > fields["at"]:
        # The clock read before this transaction began may be behind the event a
        # concurrent writer appended first.
        fields["at"] = head_at
    fields["seq"], fields["prev_hash"] = head.seq + 1, head.hash
    fields["hash"] = chain_hash(head.hash, canonical_payload(fields))
    session.execute(_APPEND, fields)


def payload_around_head(fields: Mapping[str, Any]) -> tuple[bytes, bytes, bytes, bytes]:
    """An event's canonical JSON but for its ``at``, ``prev_hash`` and ``seq``, which
    only the head decides (the time is never before the head's): the bytes before the
    first, between each two, and after the last.

    The keys sort as ``action, actor_*, at, client_hash, outcome, params, prev_hash,
    records, request_id, seq, target``; the JSON of a time and a hash is their text
    in quotes, of a number its digits.
    """
    text_fields = _text_fields({**fields, "seq": 0, "prev_hash": ""})
    before_at = {name: text_fields[name] for name in _BEFORE_AT}
    before_prev_hash = {name: text_fields[name] for name in _BEFORE_PREV_HASH}
    before_seq = {name: text_fields[name] for name in _BEFORE_SEQ}
    return (
        _canonical_json(before_at)[:-1] + b',"at":"',
        b'",' + _canonical_json(before_prev_hash)[1:-1] + b',"prev_hash":"',
        b'",' + _canonical_json(before_seq)[1:-1] + b',"seq":',
        b',"target":' + orjson.dumps(text_fields["target"]) + b"}",
    )


_BEFORE_AT = ("action", "actor_org_id", "actor_role", "actor_user_id")
_BEFORE_PREV_HASH = ("client_hash", "outcome", "params")
_BEFORE_SEQ = ("records", "request_id")


@dataclass(frozen=True)
class Purge:
    """One purge run the verification found attested in the chain (its batches together)."""

    audit_before: str
    audit_retention_days: int
    through_seq: int
    events: int
    attested_at: str
    attested_by_seq: int


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found: ``first_broken_seq`` is ``None`` when ``ok``.

    ``purges`` are the purges whose checkpoints the remaining chain attests, oldest
    first; the chain starts after the last one's ``through_seq``. ``head_status`` is
    ``found`` or ``purged`` when a head was given (``purged``: older than a purge, so
    it can no longer be checked; ``head_note`` says which purge and its cut-off).
    """

    ok: bool
    checked: int
    first_broken_seq: int | None
    head_hash: str
    head_seq: int
    reason: str | None = None
    purges: tuple[Purge, ...] = ()
    head_status: str | None = None
    head_note: str | None = None


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
    """The newest purge checkpoint, or the genesis: where appends go on when the log is empty."""
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

# PostgreSQL formats the timestamp and the ids itself: the verifier never parses them
# into Python objects only to print them again.
_PG_EVENTS = """
SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       actor_user_id::text, actor_org_id::text, actor_role, action, target, params::text,
       records, outcome, request_id, client_hash, prev_hash, hash
FROM audit_events WHERE seq > %s ORDER BY seq LIMIT %s
"""


def _events(session: Session, after: int) -> Iterator[_Event]:
    """Every event after ``after`` in order, in batches."""
    if engine_of(session) == "postgresql":
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


class _Broken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


def _parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value)).astimezone(UTC)


class _Attestations:
    """The purge records met along the chain, each checked as it comes: the
    ``retention.checkpoint`` event of each purge batch, and, in a log written before
    migration 0011 (up to ``ordered_after``), the ``retention.purge`` event that closed a
    purge run, which names its last checkpoint and cut-off but not the checkpoint's hash
    or the last purged event's time."""

    def __init__(self, checkpoints: Mapping[int, str], start: ChainHead, ordered_after: int):
        self.checkpoints, self.start, self.ordered_after = checkpoints, start, ordered_after
        self.start_attested_at: str | None = None
        self.start_last_purged_at: str | None = None
        self.purges: dict[tuple[str, int], Purge] = {}

    def check(self, fields: Mapping[str, Any]) -> None:
        seq, params = fields["seq"], fields["params"]
        legacy = fields["action"] == LEGACY_PURGE_ACTION
        if legacy and (seq > self.ordered_after or params.get("dry_run") is not False):
            return
        try:
            cut_seq = int(params["checkpoint_seq"])
            cut_hash = self.checkpoints.get(cut_seq) if legacy else str(params["checkpoint_hash"])
            last_purged_at = None if legacy else str(params["checkpoint_at"])
            cutoff = str(params["audit_before"])
            days = int(params["audit_retention_days"])
            purged = int(params["audit_events" if legacy else "purged"])
            at = _parse_time(fields["at"])
            limit = at - timedelta(days=days)
            cutoff_time = _parse_time(cutoff)
        except (KeyError, TypeError, ValueError) as exc:
            raise _Broken(seq, f"a purge record without a readable checkpoint ({exc})") from exc
        if legacy and (purged == 0 or cut_seq == 0):
            return  # a run with nothing due
        if cut_hash is None or self.checkpoints.get(cut_seq) != cut_hash:
            raise _Broken(
                seq, f"the purge names checkpoint {cut_seq}:{cut_hash}, which is not kept"
            )
        if days < 0 or cutoff_time > limit:
            raise _Broken(
                seq,
                f"the purge cut everything before {cutoff}, but a {days}-day retention at"
                f" {fields['at']} allowed only before {_iso(limit)}",
            )
        if cut_seq >= seq or (
            last_purged_at is not None and _parse_time(last_purged_at) >= cutoff_time
        ):
            raise _Broken(seq, "the purge removed events its own cut-off kept")
        if cut_seq == self.start.seq:
            # A legacy record does not know the last purged event's time: the first
            # event kept is then its own bound.
            self.start_attested_at = fields["at"]
            self.start_last_purged_at = last_purged_at or ""
        key = (cutoff, days)
        earlier = self.purges.get(key)
        self.purges[key] = Purge(
            audit_before=cutoff,
            audit_retention_days=days,
            through_seq=max(cut_seq, earlier.through_seq if earlier else 0),
            events=purged + (earlier.events if earlier else 0),
            attested_at=fields["at"],
            attested_by_seq=seq,
        )


def _start(session: Session) -> tuple[ChainHead, dict[int, str]]:
    """Where verification starts: the checkpoint just before the oldest event left.

    Every kept checkpoint is returned too. Events missing before the oldest one must
    be exactly those of a checkpoint (a purge cuts a prefix of the chain), and a
    checkpoint at or after an event still there was not written by a purge.
    """
    checkpoints = {
        int(row.seq): str(row.hash)
        for row in session.execute(select(AuditCheckpoint.seq, AuditCheckpoint.hash))
    }
    first = session.scalar(select(func.min(AuditEvent.seq)))
    if first is None:
        newest = max(checkpoints, default=0)
        return ChainHead(newest, checkpoints.get(newest, GENESIS_HASH)), checkpoints
    misplaced = [seq for seq in checkpoints if seq >= first]
    if misplaced:
        raise _Broken(
            min(misplaced),
            "a checkpoint names this event, but it and the events before it are"
            " still there: no purge wrote it",
        )
    if first == 1:
        return ChainHead(0, GENESIS_HASH), checkpoints
    if first - 1 not in checkpoints:
        raise _Broken(
            first, f"events before {first} are missing and no checkpoint accounts for them"
        )
    return ChainHead(first - 1, checkpoints[first - 1]), checkpoints


def verify(
    session: Session,
    expected_head: ChainHead | None = None,
    progress: Callable[[int], None] = lambda _n: None,
) -> VerifyResult:
    """Recompute the chain from its start (or its attested purge checkpoint); report the
    first break.

    ``expected_head`` is a head handed out earlier: the chain must still contain that
    event with that hash, which catches truncation of the newest events; a head older
    than a purge is reported as such (``head_status`` ``purged``). ``progress`` hears how
    many more events were checked, every ``VERIFY_PROGRESS_STEP``.
    """
    checked = 0
    try:
        start, checkpoints = _start(session)
    except _Broken as broken:
        return _broken(checked, broken.seq, GENESIS_HASH, broken.reason)
    prev_hash, prev_at, expected_seq = start.hash, "", start.seq + 1
    ordered_after = session.scalar(select(AuditTimeOrder.ordered_after)) or 0
    first_at: str | None = None
    attestations = _Attestations(checkpoints, start, ordered_after)
    head_status = None if expected_head is None else "purged"
    if expected_head is not None and expected_head.seq == 0:
        head_status = "found"
    if expected_head is not None and 0 < expected_head.seq == start.seq:
        if expected_head.hash != start.hash:
            return _broken(checked, start.seq, prev_hash, "differs from the head handed out")
        head_status = "found"
    for fields, stored_hash in _events(session, after=start.seq):
        seq = fields["seq"]
        if seq != expected_seq:
            return _broken(checked, seq, prev_hash, f"expected event {expected_seq}, found {seq}")
        if fields["prev_hash"] != prev_hash:
            return _broken(checked, seq, prev_hash, "prev_hash does not match the event before")
        if chain_hash(prev_hash, _canonical_json(fields)) != stored_hash:
            return _broken(checked, seq, prev_hash, "content does not match its hash")
        # Same fixed-width ISO form on both engines: text order is time order.
        if fields["at"] < prev_at and seq > ordered_after:
            return _broken(checked, seq, prev_hash, "its time is before the event before it")
        if fields["action"] in PURGE_ACTIONS and fields["outcome"] == Outcome.SUCCESS:
            try:
                attestations.check(fields)
            except _Broken as broken:
                return _broken(checked, broken.seq, prev_hash, broken.reason)
        if expected_head is not None and seq == expected_head.seq:
            if stored_hash != expected_head.hash:
                return _broken(checked, seq, prev_hash, "differs from the head handed out")
            head_status = "found"
        first_at = first_at or fields["at"]
        prev_hash, prev_at, expected_seq, checked = stored_hash, fields["at"], seq + 1, checked + 1
        if checked % VERIFY_PROGRESS_STEP == 0:
            progress(VERIFY_PROGRESS_STEP)
    progress(checked % VERIFY_PROGRESS_STEP)
    if start.seq > 0:
        attested_at, last_purged_at = (
            attestations.start_attested_at,
            attestations.start_last_purged_at,
        )
        if attested_at is None or last_purged_at is None:
            return _broken(
                checked,
                start.seq + 1,
                start.hash,
                f"the chain starts after event {start.seq}, but no purge in the chain attests"
                " that checkpoint",
            )
        if (
            first_at is not None
            and last_purged_at
            and start.seq >= ordered_after
            and _parse_time(last_purged_at) > _parse_time(first_at)
        ):
            return _broken(
                checked,
                start.seq + 1,
                start.hash,
                "its time is before the last event purged before it",
            )
    if expected_head is not None and expected_head.seq >= expected_seq:
        return _broken(
            checked, expected_head.seq, prev_hash, "the chain ends before the head handed out"
        )
    purges = tuple(sorted(attestations.purges.values(), key=lambda purge: purge.through_seq))
    note = None
    if head_status == "purged" and expected_head is not None:
        note = _purged_head_note(expected_head, purges, start)
    return VerifyResult(
        ok=True,
        checked=checked,
        first_broken_seq=None,
        head_hash=prev_hash,
        head_seq=expected_seq - 1,
        purges=purges,
        head_status=head_status,
        head_note=note,
    )


def _purged_head_note(head: ChainHead, purges: tuple[Purge, ...], start: ChainHead) -> str:
    # The purge that removed it, if its record is still in the chain; else the newest.
    purge = next((p for p in purges if p.through_seq >= head.seq), purges[-1] if purges else None)
    if purge is None:
        return f"event {head.seq} is older than the chain's start after event {start.seq}"
    return (
        f"event {head.seq} is older than the purge recorded at event {purge.attested_by_seq}"
        f" ({purge.attested_at}), which removed the events before {purge.audit_before}"
        f" ({purge.audit_retention_days}-day retention): it can no longer be checked. If you"
        f" received this head after {purge.audit_before}, events were erased."
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
