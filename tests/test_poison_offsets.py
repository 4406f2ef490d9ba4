"""A time offset PostgreSQL cannot hold must not poison a batch (issue 26, section 8).

Python reads offsets up to 23:59:59; PostgreSQL's ``timestamptz`` input takes at most
15:59:59. An encounter or shift sent with ``+16:00``, ``-16:00`` or ``+15:59:59`` passed
validation, then PostgreSQL refused the whole batch: a 500, the valid items with it
stored nothing, and every resend failed the same way. Times are now normalised to UTC
before they are stored or compared; the instant is the one the phone meant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask.testing import FlaskClient

from outreach.models import Role
from tests.payloads import encounter, shift

OFFSETS = (
    timedelta(hours=16),
    timedelta(hours=-16),
    timedelta(hours=15, minutes=59, seconds=59),
    timedelta(hours=23, minutes=59),
)


def _in(offset: timedelta, hours_ago: float) -> str:
    moment = datetime.now(UTC) - timedelta(hours=hours_ago)
    return moment.astimezone(timezone(offset)).isoformat()


@pytest.mark.parametrize("atomic", [False, True])
def test_far_offsets_are_stored_as_their_instant(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]], atomic: bool
) -> None:
    worker = auth_headers(Role.WORKER)
    shifts = [shift(started_at=_in(offset, 5), ended_at=_in(offset, 1)) for offset in OFFSETS]
    encounters = [
        encounter(occurred_at=_in(offset, 2), shift_id=shifts[index]["id"])
        for index, offset in enumerate(OFFSETS)
    ] + [encounter() for _ in range(45)]
    url = "/api/v1/sync?atomic=true" if atomic else "/api/v1/sync"
    body = {"shifts": shifts, "encounters": encounters}
    response = client.post(url, json=body, headers=worker)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["counts"]["created"] == len(shifts) + len(encounters)
    # The resend is a duplicate, item by item: the phone syncs again.
    again = client.post(url, json=body, headers=worker)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["counts"]["duplicate"] == len(shifts) + len(encounters)


def test_an_amendment_with_a_far_offset_is_stored(
    client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    admin = auth_headers(Role.ORG_ADMIN, "assoc-a")
    item = encounter()
    assert (
        client.post("/api/v1/sync", json={"encounters": [item]}, headers=admin).status_code == 200
    )
    moved = _in(timedelta(hours=-16), 3)
    response = client.patch(
        f"/api/v1/encounters/{item['id']}", json={"occurred_at": moved}, headers=admin
    )
    assert response.status_code == 200, response.get_json()
    stored = datetime.fromisoformat(response.get_json()["occurred_at"])
    assert stored == datetime.fromisoformat(moved)
