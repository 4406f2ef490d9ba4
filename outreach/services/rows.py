"""The rows the write side hands between modules: shifts and encounters, as loaded,
as stored and as the rollups count them.

The rule: a row that crosses a module boundary on the write side (API to sync, sync to
encounters, either to rollups) has a ``TypedDict`` here, never a dict of ``Any``, so
strict mypy checks every key read and written. A key is ``NotRequired`` only when the
row really comes without it; a row that gains keys as it is built is two types, the
fields and the fields with what is derived from them (``EncounterFields`` and
``StoredFields``). The names of the stored fields are written once, as ``StoredField``:
``rollups.STORED_FIELDS`` is read from it, and this module refuses to load if
``StoredFields`` has other keys.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal, NotRequired, TypedDict, get_args


class ShiftItem(TypedDict):
    """A shift as ``schemas.sync.ShiftSchema`` loads it."""

    id: uuid.UUID
    kind: str
    started_at: datetime
    ended_at: datetime
    planned_sectors: list[str]


class ShiftContent(TypedDict):
    """The part of a shift its content hash covers, times as Paris ISO strings."""

    kind: str
    started_at: str
    ended_at: str
    planned_sectors: list[str]


class ShiftRow(TypedDict):
    """A shift as stored (``sync.shift_row``)."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    created_by: uuid.UUID
    kind: str
    started_at: datetime
    ended_at: datetime
    planned_sectors: list[str]
    content_hash: str


class Location(TypedDict, total=False):
    """``location`` as ``LocationSchema`` loads it: a point (``lat``, ``lon``, perhaps
    ``accuracy_m``) or a ``cell``, never both."""

    lat: float
    lon: float
    accuracy_m: float
    cell: str


class PersonItem(TypedDict, total=False):
    """``person`` as ``PersonSchema`` loads it (its defaults filled in), or as an
    amendment reads it back from the stored row (``encounters.person_of``), whose
    columns are nullable; ``ref`` only when the phone sent one. Not total: without a
    person, ``EncounterBuilder.build`` reads an empty one, each field at its default."""

    age_band: str | None
    gender: str | None
    first_contact: bool | None
    ref: str


class ReferralItem(TypedDict):
    """A referral as ``ReferralSchema`` loads it (no ``structure`` when none was named),
    or as an amendment reads it back (``structure`` ``None``)."""

    to: str
    structure: NotRequired[str | None]
    status: str


class Referral(TypedDict):
    """A referral as stored: ``structure`` is always there, ``None`` when none was named."""

    to: str
    structure: str | None
    status: str


class EncounterChanges(TypedDict, total=False):
    """An amendment: any field of ``EncounterItem`` but the id (``EncounterAmendSchema``)."""

    occurred_at: datetime
    shift_id: uuid.UUID | None
    location: Location
    setting: str
    people: int
    person: PersonItem | None
    kits: dict[str, int]
    services: list[str]
    referrals: list[ReferralItem]


class EncounterItem(TypedDict):
    """An encounter as ``schemas.sync.EncounterSchema`` loads it, or as an amendment
    rebuilds it from the stored row and the changes (then without ``location`` unless
    it changes). ``EncounterBuilder.build`` takes ``location`` out."""

    id: uuid.UUID
    occurred_at: datetime
    shift_id: NotRequired[uuid.UUID | None]
    location: NotRequired[Location]
    setting: str
    people: int
    person: NotRequired[PersonItem | None]
    kits: dict[str, int]
    services: list[str]
    referrals: list[ReferralItem]


class KeptFields(TypedDict):
    """What an amendment without a new time, location or ref keeps of the stored row."""

    occurred_at: datetime
    cell: str
    sector: str
    ref_hash: str | None


class _Observed(TypedDict):
    """What a phone observed of an encounter, the same in a stored row and its content."""

    cell: str
    sector: str
    setting: str
    people: int
    age_band: str | None
    gender: str | None
    first_contact: bool | None
    ref_hash: str | None
    kits: dict[str, int]
    services: list[str]
    referrals: list[Referral]


class EncounterFields(_Observed):
    """What an encounter write decides, but its content hash (which covers these)."""

    shift_id: uuid.UUID | None
    shift_kind: str
    occurred_at: datetime
    local_day: date


class StoredFields(EncounterFields):
    """What an encounter write decides, hash included: an amendment replaces exactly
    these columns (``StoredField``)."""

    content_hash: str


class StoredEncounter(StoredFields):
    """What the rollups read of one encounter (``rollups.stored_row``, ``Deltas.add``)."""

    organisation_id: uuid.UUID
    record_key: int


class EncounterRow(StoredEncounter):
    """An encounter as stored (``sync.EncounterBuilder.build``)."""

    id: uuid.UUID
    created_by: uuid.UUID


class EncounterContent(_Observed):
    """The part of a stored encounter its content hash covers (what a phone decides),
    the time as a Paris ISO string and the shift id as a string."""

    occurred_at: str
    shift_id: str | None


# The stored fields' names, the one list of them (``rollups.STORED_FIELDS``), in column order.
StoredField = Literal[
    "shift_id",
    "shift_kind",
    "occurred_at",
    "local_day",
    "cell",
    "sector",
    "setting",
    "people",
    "age_band",
    "gender",
    "first_contact",
    "ref_hash",
    "kits",
    "services",
    "referrals",
    "content_hash",
]

# mypy checks that every ``StoredField`` is a key of ``StoredFields`` (an amendment reads
# them from its row), not the converse: checked here, once, at import.
if set(get_args(StoredField)) != set(StoredFields.__annotations__):
    raise TypeError("StoredField and StoredFields name different fields.")
