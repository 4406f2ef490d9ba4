"""SQLAlchemy 2 typed models. Importing this package registers every table."""

from outreach.models.accounts import Organisation, OrgKind, RefreshFamily, Role, User
from outreach.models.audit import AUDIT_LOCK_KEY, AuditCheckpoint, AuditEvent, AuditTimeOrder
from outreach.models.base import Base, UTCDateTime, utcnow
from outreach.models.directory import Kit, Structure
from outreach.models.field import Encounter, EncounterVersion, Shift
from outreach.models.rollups import (
    NO_SHIFT,
    PersonYear,
    RollupCell,
    RollupCellSpan,
    RollupGeneration,
    RollupPerson,
    RollupSector,
    RollupSpanGeneration,
    RollupTotal,
)

__all__ = [
    "AUDIT_LOCK_KEY",
    "NO_SHIFT",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditTimeOrder",
    "Base",
    "Encounter",
    "EncounterVersion",
    "Kit",
    "OrgKind",
    "Organisation",
    "PersonYear",
    "RefreshFamily",
    "Role",
    "RollupCell",
    "RollupCellSpan",
    "RollupGeneration",
    "RollupPerson",
    "RollupSector",
    "RollupSpanGeneration",
    "RollupTotal",
    "Shift",
    "Structure",
    "UTCDateTime",
    "User",
    "utcnow",
]
