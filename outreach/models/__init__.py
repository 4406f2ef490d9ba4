"""SQLAlchemy 2 typed models. Importing this package registers every table."""

from outreach.models.accounts import Organisation, OrgKind, RefreshFamily, Role, User
from outreach.models.audit import AuditEvent
from outreach.models.base import Base, UTCDateTime, utcnow

__all__ = [
    "AuditEvent",
    "Base",
    "OrgKind",
    "Organisation",
    "RefreshFamily",
    "Role",
    "UTCDateTime",
    "User",
    "utcnow",
]
