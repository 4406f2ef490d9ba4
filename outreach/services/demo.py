"""Demo organisations and one account per role, for trying the service locally."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from outreach.models import OrgKind, Role, User
from outreach.services import accounts
from outreach.services.context import OPERATOR
from outreach.services.passwords import Passwords

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
