"""The processing register, generated from what is running so it cannot drift.

Purposes, legal basis and data categories are the fixed texts of
``data/governance.json``; everything that depends on configuration (the hexagon
resolution, the small-cell threshold, retention, token lifetimes, lock-out
thresholds, where the database is, which roles may call which routes) is read from
the running settings, database and URL map at the time of the request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import h3
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from config import Settings
from outreach.models import Role
from outreach.services import audit
from outreach.services.access import ROLE_ORG_KIND
from outreach.services.context import CallContext
from outreach.services.disclosure import load_table
from schemas.vocabulary import DATA_DIR

GOVERNANCE_FILE = DATA_DIR / "governance.json"


@cache
def fixed_texts() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GOVERNANCE_FILE.read_text("utf-8"))
    return loaded


def _disclosure(settings: Settings) -> str:
    table = load_table(settings.perturbation_table)
    return (
        f"cell key method: counts based on 1 to {settings.small_cell_k - 1} encounters "
        f"masked, every other figure perturbed by at most {table.max_deviation} "
        f"(variance {table.variance:g}, table {table.name}), the same cell always "
        "answering the same; exact figures only for an association's own org_admin "
        "(docs/disclosure.md)"
    )


def _database(url: str, dialect: str) -> dict[str, Any]:
    parsed = make_url(url)
    # Host and database name only: never the user or the password of the URL.
    return {
        "engine": dialect,
        "host": parsed.host or "local file",
        "database": parsed.database if dialect != "sqlite" else "embedded SQLite file",
    }


def register(
    session: Session,
    ctx: CallContext,
    settings: Settings,
    routes_by_role: Mapping[Role, Sequence[str]],
) -> dict[str, Any]:
    """The register as of now; reading it is audited like any other read."""
    dialect = session.get_bind().dialect.name
    texts = fixed_texts()
    resolution = settings.h3_resolution
    body = {
        "name": texts["name"],
        "controller": settings.controller,
        "purposes": texts["purposes"],
        "legal_basis": texts["legal_basis"],
        "data_subjects": texts["data_subjects"],
        "categories": texts["categories"],
        "never_collected": texts["never_collected"],
        "recipients": [
            {
                "role": role.value,
                "organisation_kind": ROLE_ORG_KIND[role].value,
                "routes": list(routes_by_role.get(role, ())),
            }
            for role in Role
        ],
        "location_precision": {
            "h3_resolution": resolution,
            "hexagon_area_km2": round(h3.average_hexagon_area(resolution, unit="km^2"), 4),
            "coordinates_stored": False,
        },
        "small_cell_threshold": settings.small_cell_k,
        "retention": {
            "raw_encounters_days": settings.retention_days,
            "audit_events_days": settings.audit_retention_days,
            "aggregates": "kept: counts without any person-level detail",
            "purge": "flask retention purge (audited; the audit chain keeps a checkpoint)",
        },
        "security_measures": {
            "environment": settings.env,
            "passwords": (
                f"argon2id (t={settings.argon2_time_cost}, m={settings.argon2_memory_kib} KiB, "
                f"p={settings.argon2_parallelism}), 12 to 1024 characters"
            ),
            "access_token_minutes": settings.access_token_minutes,
            "refresh_token_days": settings.refresh_token_days,
            "login_lockout": (
                f"{settings.login_max_failures} failures per username; after "
                f"{settings.login_client_max_failures} failures on usernames new to a client "
                "address, that address may only try usernames that signed in from it; "
                f"{settings.login_lockout_minutes} minutes"
            ),
            "rate_limit_storage": settings.ratelimit_storage_url.split("://", 1)[0],
            "person_refs": "HMAC-SHA256 under a server pepper; never stored in clear",
            "audit_log": (
                "hash-chained, append-only enforced by database triggers"
                if dialect == "postgresql"
                else "hash-chained (append-only triggers need PostgreSQL)"
            ),
            "disclosure_control": _disclosure(settings),
            "access_control": "role per organisation kind; other organisations' records answer 404",
        },
        "hosting": {
            "declared": settings.hosting,
            "database": _database(settings.database_url, dialect),
        },
        "transfers": texts["transfers"],
    }
    with session.begin():
        audit.record(session, ctx, "governance.register", records=1)
    return body
