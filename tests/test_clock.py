"""The Paris clock: every use case reads today from ``outreach.clock``, so a test sets it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from flask.testing import FlaskClient

from outreach.clock import fixed_today, paris_today
from outreach.models import Role


def test_a_fixed_day_holds_within_its_block_and_the_one_around_it_returns() -> None:
    with fixed_today(date(2026, 3, 4)):
        with fixed_today(date(2025, 12, 31)):
            assert paris_today() == date(2025, 12, 31)
        assert paris_today() == date(2026, 3, 4)


def test_the_api_counts_its_days_from_the_clock(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    headers = auth_headers(Role.COORDINATOR)
    # A Wednesday of ISO week 23: the last whole week is 22, and 2026 has not begun.
    with fixed_today(date(2025, 6, 4)):
        offered = client.get("/api/v1/stats/periods", headers=headers)
        report = client.get("/api/v1/reports/activity?year=2026", headers=headers)
    assert offered.status_code == 200
    assert offered.get_json()["default"] == "2025-W22"
    assert report.status_code == 422
    assert report.get_json()["errors"] == {"query": {"year": ["That year has not begun."]}}
