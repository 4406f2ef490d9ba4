"""HTTP views, one blueprint per resource: parse with a schema, call a service, dump."""

from outreach.api import accounts, auth, health

BLUEPRINTS = [auth.blp, accounts.orgs, accounts.users, health.blp]
