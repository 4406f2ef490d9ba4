"""The retention purge: raw data past its period goes, aggregates and the chain stay.

Raw encounters (with their versions) older than ``OUTREACH_RETENTION_DAYS`` Paris
days are deleted, and so are the person-days of distinct-people counting for those
days; the counters of the rollups stay, so statistics of past years still answer.
Audit events older than ``OUTREACH_AUDIT_RETENTION_DAYS`` are deleted oldest first,
and each batch leaves a checkpoint (the sequence and hash of its last event) and its
``retention.checkpoint`` event, which attests the checkpoint and the cut-off, in the
same transaction, so the remaining chain still verifies (``services.audit``). The
cut-off can never be later than the retention period allows.

Every batch is its own transaction: an interrupted purge leaves whole batches done
and the rest untouched, and running it again finishes the job. It is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import paris_today
from outreach.models import (
    AuditCheckpoint,
    AuditEvent,
    Encounter,
    EncounterVersion,
    PersonYear,
    RollupPerson,
    utcnow,
)
from outreach.models.dialect import allow_audit_purge
from outreach.models.rollups import DAY_WORDS
from outreach.services import audit, writes
from outreach.services.context import CallContext
from outreach.services.rollups import year_masks

PURGE_BATCH = 5_000
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Cutoffs:
    """Raw data before these moments is past its retention period."""

    encounters_before: date
    audit_before: datetime


def cutoffs(settings: Settings, today: date | None = None, now: datetime | None = None) -> Cutoffs:
    return Cutoffs(
        encounters_before=(today or paris_today()) - timedelta(days=settings.retention_days),
        audit_before=(now or utcnow()) - timedelta(days=settings.audit_retention_days),
    )


@dataclass(frozen=True)
class PurgeResult:
    encounters_before: date
    audit_before: datetime
    encounters: int
    person_days: int
    audit_events: int
    checkpoint_seq: int
    dry_run: bool


@dataclass(frozen=True)
class Due:
    """What a purge at given cutoffs deletes: counts, and the audit events' span."""

    encounters: int
    person_days: int
    checkpoint_seq: int
    last_seq: int

    @property
    def audit_events(self) -> int:
        return max(0, self.last_seq - self.checkpoint_seq)


def due(session: Session, limits: Cutoffs) -> Due:
    """Count what is past ``limits`` (in its own transaction; deletes nothing)."""
    with session.begin():
        old_encounters = Encounter.local_day < limits.encounters_before
        encounters = session.scalar(select(func.count()).where(old_encounters)) or 0
        person_days = (
            session.scalar(select(func.count()).where(RollupPerson.day < limits.encounters_before))
            or 0
        )
        start = audit.latest_checkpoint(session).seq
        return Due(
            encounters=encounters,
            person_days=person_days,
            checkpoint_seq=start,
            last_seq=_last_purgeable_seq(session, limits.audit_before),
        )


def _last_purgeable_seq(session: Session, before: datetime) -> int:
    """The end of the oldest run of events all older than ``before`` (a prefix of the chain)."""
    first_kept = session.scalar(select(func.min(AuditEvent.seq)).where(AuditEvent.at >= before))
    if first_kept is not None:
        return int(first_kept) - 1
    return int(session.scalar(select(func.max(AuditEvent.seq))) or 0)


def purge(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    *,
    dry_run: bool = False,
    batch: int = PURGE_BATCH,
    progress: Progress = lambda _what, _n: None,
    limits: Cutoffs | None = None,
) -> PurgeResult:
    limits = limits or cutoffs(settings)
    allowed = cutoffs(settings).audit_before
    if limits.audit_before > allowed:
        # The verifier would refuse the checkpoint: the period is the policy.
        raise ValueError(
            f"audit events before {limits.audit_before} are not all past their"
            f" {settings.audit_retention_days}-day retention"
        )
    counted = due(session, limits)
    start, last = counted.checkpoint_seq, counted.last_seq
    encounters, checkpoint = counted.encounters, start
    if not dry_run:
        encounters = _purge_encounters(session, limits.encounters_before, batch, progress)
        checkpoint = _purge_audit(session, ctx, settings, limits, last, batch, progress)
    # The person-days last, with the purge's event: the change of every span they were
    # counted in is marked there (``writes``).
    with session.begin():
        if dry_run:
            person_days, change = counted.person_days, writes.NOTHING
        else:
            person_days, change = _purge_person_days(session, limits.encounters_before)
            progress("person-days", person_days)
        result = PurgeResult(
            limits.encounters_before,
            limits.audit_before,
            encounters,
            person_days,
            counted.audit_events if dry_run else checkpoint - start,
            start if dry_run else checkpoint,
            dry_run=dry_run,
        )
        writes.record(
            session,
            ctx,
            "retention.purge",
            change,
            params={
                **asdict(result),
                "retention_days": settings.retention_days,
                "audit_retention_days": settings.audit_retention_days,
            },
            records=result.encounters + result.person_days + result.audit_events,
        )
    return result


def _purge_encounters(session: Session, before: date, batch: int, progress: Progress) -> int:
    deleted = 0
    while True:
        with session.begin():
            # Whole keys: another association may hold a recent encounter of the same id.
            keys = [
                tuple(key)
                for key in session.execute(
                    select(Encounter.organisation_id, Encounter.id)
                    .where(Encounter.local_day < before)
                    .order_by(Encounter.organisation_id, Encounter.id)
                    .limit(batch)
                )
            ]
            if not keys:
                return deleted
            session.execute(
                delete(EncounterVersion).where(
                    tuple_(EncounterVersion.organisation_id, EncounterVersion.encounter_id).in_(
                        keys
                    )
                )
            )
            session.execute(
                delete(Encounter).where(tuple_(Encounter.organisation_id, Encounter.id).in_(keys))
            )
        deleted += len(keys)
        progress("encounters", len(keys))


def _purge_person_days(session: Session, before: date) -> tuple[int, writes.CountersChange]:
    """Delete the person-days before ``before``, and their bits in the person-year
    bitmaps, in the caller's transaction: how many, and the change (every span before)."""
    result = session.execute(delete(RollupPerson).where(RollupPerson.day < before))
    session.execute(delete(PersonYear).where(PersonYear.year < before.year))
    keep = year_masks(before, date(before.year, 12, 31))[before.year]
    session.execute(
        update(PersonYear)
        .where(PersonYear.year == before.year)
        .values(
            {
                word: getattr(PersonYear, word).bitwise_and(mask)
                for word, mask in zip(DAY_WORDS, keep, strict=True)
            }
        )
    )
    session.execute(
        delete(PersonYear).where(*(getattr(PersonYear, word) == 0 for word in DAY_WORDS))
    )
    return int(getattr(result, "rowcount", 0) or 0), writes.changed(session, before=before)


def _purge_audit(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    limits: Cutoffs,
    last: int,
    batch: int,
    progress: Progress,
) -> int:
    """Delete events up to ``last`` in batches, each leaving its attested checkpoint; the
    final one."""
    while True:
        with session.begin():
            start = audit.latest_checkpoint(session).seq
            upto = min(last, start + batch)
            if upto <= start:
                return start
            cut = session.execute(
                select(AuditEvent.seq, AuditEvent.hash, AuditEvent.at).where(AuditEvent.seq == upto)
            ).one()
            allow_audit_purge(session)
            session.add(
                AuditCheckpoint(seq=cut.seq, hash=cut.hash, at=utcnow(), purged=upto - start)
            )
            session.execute(delete(AuditEvent).where(AuditEvent.seq <= upto))
            # Appended last, like every event: the chain lock is taken here.
            audit.record(
                session,
                ctx,
                audit.CHECKPOINT_ACTION,
                params={
                    "checkpoint_seq": cut.seq,
                    "checkpoint_hash": cut.hash,
                    "checkpoint_at": audit.iso_time(cut.at),
                    "audit_before": audit.iso_time(limits.audit_before),
                    "audit_retention_days": settings.audit_retention_days,
                    "purged": upto - start,
                },
                records=upto - start,
            )
        progress("audit events", upto - start)
