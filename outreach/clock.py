"""The Paris calendar: the zone every day of the service is counted in, and today.

Days (rollups, periods, retention, audit filters) are Paris days. ``paris_today`` is
the one place the services read today from; a test fixes it with ``fixed_today`` to
play a calendar through (an attacker returning every day, a month's to-date figures).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

_fixed: date | None = None


def paris_today() -> date:
    return _fixed or datetime.now(PARIS).date()


@contextmanager
def fixed_today(day: date) -> Iterator[None]:
    """Make ``paris_today`` answer ``day`` within the block (tests)."""
    global _fixed
    before, _fixed = _fixed, day
    try:
        yield
    finally:
        _fixed = before
