"""HTTP views, one blueprint per resource: parse with a schema, call a service, dump."""

from outreach.api import (
    accounts,
    audit,
    auth,
    directory,
    encounters,
    health,
    reports,
    stats,
    sync,
)

BLUEPRINTS = [
    auth.blp,
    accounts.orgs,
    accounts.users,
    directory.blp,
    sync.blp,
    encounters.blp,
    stats.blp,
    reports.blp,
    audit.blp,
    audit.governance_blp,
    health.blp,
]
