"""HTTP views, one blueprint per resource: parse with a schema, call a service, dump."""

from outreach.api import accounts, auth, directory, encounters, health, sync

BLUEPRINTS = [
    auth.blp,
    accounts.orgs,
    accounts.users,
    directory.blp,
    sync.blp,
    encounters.blp,
    health.blp,
]
