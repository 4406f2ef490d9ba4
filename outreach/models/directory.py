"""Reference data edited by people: the kit catalogue and the structure directory."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import Base, UTCDateTime, utcnow


class Kit(Base):
    """A kind of harm-reduction material; an admin may add codes."""

    __tablename__ = "kits"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Structure(Base):
    """A place people are referred to. Its position is the structure's own address."""

    __tablename__ = "structures"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    destination: Mapped[str] = mapped_column(String(32), index=True)
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    capacity: Mapped[int | None]
    opening_hours: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
