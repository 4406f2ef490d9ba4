"""Demo organisations, one account per role, and synthetic field activity.

The activity goes through the same sync use case as the phones, so demo data obeys
every rule real data does (anonymisation, rollups, audit).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from outreach.clock import PARIS, paris_today
from outreach.models import Organisation, OrgKind, Role, User
from outreach.services import accounts, sync
from outreach.services.context import OPERATOR, CallContext, Principal, principal_of
from outreach.services.geo import sector_centres
from outreach.services.passwords import Passwords
from outreach.services.sync import SyncBatch
from schemas.sync import EncounterSchema, ShiftSchema

DEMO_ORGANISATIONS = (
    ("maraude-nord", "Association Maraude Nord (démo)", OrgKind.ASSOCIATION),
    ("rdr-est", "Association RdR Est (démo)", OrgKind.ASSOCIATION),
    ("ville-coordination", "Coordination du plan crack, Ville (démo)", OrgKind.CITY),
    ("ars-idf", "Agence régionale de santé (démo)", OrgKind.HEALTH_AUTHORITY),
    ("plateforme", "Plateforme Outreach (démo)", OrgKind.PLATFORM),
)
DEMO_USERS = (
    ("demo-worker", Role.WORKER, "maraude-nord"),
    ("demo-worker-2", Role.WORKER, "rdr-est"),
    ("demo-orgadmin", Role.ORG_ADMIN, "maraude-nord"),
    ("demo-coordinator", Role.COORDINATOR, "ville-coordination"),
    ("demo-auditor", Role.AUDITOR, "ars-idf"),
    ("demo-admin", Role.ADMIN, "plateforme"),
)


@dataclass(frozen=True)
class SeedSummary:
    organisations_created: int
    users_created: int


def seed_demo_accounts(
    session: Session,
    passwords: Passwords,
    password: str,
    progress: Callable[[str], None] = lambda _msg: None,
) -> SeedSummary:
    """Create what is missing; an existing account keeps its password."""
    org_ids = {}
    orgs_created = 0
    for slug, name, kind in DEMO_ORGANISATIONS:
        organisation, created = accounts.get_or_create_organisation(
            session, OPERATOR, slug=slug, name=name, kind=kind
        )
        org_ids[slug] = organisation.id
        orgs_created += created
        progress(f"organisation {slug}")
    users_created = 0
    for username, role, slug in DEMO_USERS:
        with session.begin():
            exists = session.scalar(select(User.id).where(User.username == username))
        if exists is None:
            accounts.create_user(
                session,
                OPERATOR,
                passwords,
                accounts.NewUser(
                    username=username, password=password, role=role, organisation_id=org_ids[slug]
                ),
            )
            users_created += 1
        progress(f"user {username}")
    return SeedSummary(organisations_created=orgs_created, users_created=users_created)


# Activity -------------------------------------------------------------------------

DEMO_NAMESPACE = uuid.UUID("6f1d2c1e-3b4a-4e59-9a53-0d7c1f0e2b11")
# Weights seen in the field: smoking material dominates, injection material is rare.
KIT_WEIGHTS = {
    "kit_base": 30,
    "pipe": 18,
    "embout": 22,
    "filtre": 16,
    "feuille_alu": 6,
    "roule_ta_paille": 6,
    "preservatif": 8,
    "seringue": 3,
    "kit_injection": 2,
    "naloxone": 1,
}
REFERRAL_WEIGHTS = {
    "espace_repos": 40,
    "assore": 25,
    "caarud": 10,
    "csapa": 6,
    "halte_soins_addictions": 6,
    "halte_nuit": 5,
    "urgences": 3,
    "accueil_jour": 5,
}
SERVICE_WEIGHTS = {
    "ecoute": 50,
    "information_rdr": 25,
    "soin_infirmier": 8,
    "acces_droits": 8,
    "hygiene": 6,
    "depistage": 3,
}
# (kind, start hour, hours) of the outings an association runs on a typical day.
SHIFT_PATTERNS = (("rdr", 18, 4), ("rdr", 9, 3), ("souterraine", 14, 3), ("sociale", 21, 4))
# Where each association usually goes; the scene concentrates on a few sites.
AREAS = {
    "maraude-nord": ("stalingrad", "eole", "la_chapelle", "marx_dormoy", "porte_chapelle"),
    "rdr-est": (
        "rosa_parks",
        "ourcq_villette",
        "porte_villette",
        "porte_aubervilliers",
        "stalingrad",
    ),
}


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def field_day(
    rng: random.Random,
    team: str,
    areas: tuple[str, ...],
    day: date,
    centres: dict[str, tuple[float, float]],
) -> dict[str, list[dict[str, Any]]]:
    """One team's shifts and encounters of one day in ``areas``, as a phone sends them.

    Ids derive from the team and the day, so the same team, day and draws give the
    same items. The phone simulator of ``bench/`` uses this too.
    """
    shifts: list[dict[str, Any]] = []
    encounters: list[dict[str, Any]] = []
    patterns = rng.sample(SHIFT_PATTERNS, k=rng.randint(1, 3))
    for number, (kind, hour, hours) in enumerate(patterns):
        start = datetime.combine(day, time(hour), PARIS) + timedelta(minutes=rng.randint(0, 40))
        end = start + timedelta(hours=hours)
        planned = rng.sample(areas, k=min(len(areas), rng.randint(1, 3)))
        shift_id = uuid.uuid5(DEMO_NAMESPACE, f"{team}/{day}/shift/{number}")
        shifts.append(
            {
                "id": str(shift_id),
                "kind": kind,
                "started_at": start.isoformat(),
                "ended_at": end.isoformat(),
                "planned_sectors": planned,
            }
        )
        for index in range(rng.randint(4, 22)):
            sector = rng.choice(planned)
            lat, lon = centres[sector]
            people = 1 if rng.random() < 0.8 else rng.randint(2, 6)
            encounter: dict[str, Any] = {
                "id": str(uuid.uuid5(DEMO_NAMESPACE, f"{team}/{day}/{number}/{index}")),
                "occurred_at": (start + (end - start) * rng.random()).isoformat(),
                "shift_id": str(shift_id),
                "location": {
                    "lat": lat + rng.gauss(0, 0.0006),
                    "lon": lon + rng.gauss(0, 0.0008),
                    "accuracy_m": rng.choice([5, 10, 20, 35]),
                },
                "setting": "metro" if kind == "souterraine" else rng.choice(["rue"] * 9 + ["gare"]),
                "people": people,
                "kits": {},
                "services": sorted({_pick(rng, SERVICE_WEIGHTS) for _ in range(rng.randint(1, 2))}),
                "referrals": [],
            }
            for _ in range(rng.randint(0, 3) * people):
                code = _pick(rng, KIT_WEIGHTS)
                encounter["kits"][code] = encounter["kits"].get(code, 0) + rng.randint(1, 3)
            if people == 1:
                person = {
                    "age_band": rng.choice(
                        ["18-24", "25-34", "25-34", "35-44", "35-44", "45-54", "55+", "unknown"]
                    ),
                    "gender": "f"
                    if rng.random() < 0.22
                    else rng.choice(["m", "m", "m", "unknown"]),
                    "first_contact": rng.random() < 0.12,
                }
                if rng.random() < 0.5:
                    person["ref"] = f"demo-{team}-person-{rng.randint(1, 150):04d}"
                encounter["person"] = person
            if rng.random() < 0.12:
                encounter["referrals"].append(
                    {
                        "to": _pick(rng, REFERRAL_WEIGHTS),
                        "status": rng.choice(["proposed", "proposed", "accepted", "accompanied"]),
                    }
                )
            encounters.append(encounter)
    return {"shifts": shifts, "encounters": encounters}


def worked_days(days: int) -> list[date]:
    """The last ``days`` days whose rounds are all over, oldest first.

    They end the day before yesterday: a night round ends after midnight, and the
    service refuses times in the future, so yesterday's could not be synced in the
    first hours of today (seeding failed then).
    """
    today = paris_today()
    return [today - timedelta(days=offset) for offset in range(days + 1, 1, -1)]


def seed_demo_activity(
    session: Session,
    settings: Settings,
    days: int,
    progress: Callable[[str], None] = lambda _msg: None,
) -> int:
    """N days of synthetic activity (``worked_days``), synced as the demo workers.

    Ids and random draws derive from the association and the day, so a second run
    on the same day sends the same items and stores nothing new.
    """
    centres = sector_centres()
    created = 0
    for slug, username in (("maraude-nord", "demo-worker"), ("rdr-est", "demo-worker-2")):
        principal = _demo_principal(session, username)
        ctx = CallContext(principal=principal, request_id="seed-demo", client_hash=None)
        for day in worked_days(days):
            rng = random.Random(f"{slug}/{day.isoformat()}")  # noqa: S311 (synthetic data)
            raw = field_day(rng, slug, AREAS[slug], day, centres)
            batch = SyncBatch(
                shifts=[(i, ShiftSchema().load(item)) for i, item in enumerate(raw["shifts"])],
                encounters=[
                    (i, EncounterSchema().load(item)) for i, item in enumerate(raw["encounters"])
                ],
            )
            outcome = sync.sync(session, ctx, settings, batch, atomic=True)
            created += sum(
                1 for r in outcome.results if r.kind == "encounter" and r.status == "created"
            )
            progress(f"{slug} {day}")
    return created


def _demo_principal(session: Session, username: str) -> Principal:
    with session.begin():
        user, organisation = session.execute(
            select(User, Organisation)
            .join(Organisation, Organisation.id == User.organisation_id)
            .where(User.username == username)
        ).one()
    # Demo activity is synced in process, not through a login: no refresh family.
    return principal_of(user, organisation, uuid.UUID(int=0))
