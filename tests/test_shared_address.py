"""One phone must not lock out its whole team (issue 26, section 5).

Phones behind one carrier NAT, or an association's office, share an address. Twenty
failed logins from it used to lock every account at that address for 15 minutes. Now
the address, once past its failures, may only try usernames that already signed in
from it: the team keeps working, a sprayer's new usernames are still refused, and a
username's own lock (five failures) is kept.
"""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from outreach.models import Role
from tests.helpers import PASSWORD, Account

LOGIN = "/api/v1/auth/login"
OFFICE = "10.20.30.40"
WRONG = "not the password at all"


def _login(
    client: FlaskClient, username: str, password: str = PASSWORD
) -> tuple[int, dict[str, str]]:
    response = client.post(
        LOGIN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": OFFICE},
    )
    return response.status_code, dict(response.headers)


def test_a_spraying_address_keeps_its_known_usernames_and_loses_new_ones(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    team = [make_account(Role.WORKER, "assoc-a") for _ in range(2)]
    newcomer = make_account(Role.WORKER, "assoc-a")
    for member in team:
        assert _login(client, member.username)[0] == 200
    signed_in = client.post(
        LOGIN,
        json={"username": team[1].username, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": OFFICE},
    )
    refresh = signed_in.get_json()["refresh_token"]
    # A passer-by (or one misconfigured phone) tries twenty usernames from the office.
    statuses = [_login(client, f"guess-{n}", WRONG)[0] for n in range(20)]
    assert statuses == [401] * 20
    # The team signs in as before (it used to be 429 for everyone at this address)...
    for member in team:
        assert _login(client, member.username)[0] == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 200
    # ...while a username that never signed in from here waits, told for how long.
    status, headers = _login(client, newcomer.username)
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 15 * 60
    assert _login(client, "guess-21", WRONG)[0] == 429
    # From another address the newcomer is not concerned.
    elsewhere = client.post(
        LOGIN,
        json={"username": newcomer.username, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.99.99.99"},
    )
    assert elsewhere.status_code == 200


def test_a_known_username_failing_locks_itself_not_the_address(
    client: FlaskClient, make_account: Callable[..., Account]
) -> None:
    phone = make_account(Role.WORKER, "assoc-a")
    colleague = make_account(Role.WORKER, "assoc-a")
    assert _login(client, phone.username)[0] == 200
    # Its stored password changed; the phone retries with the old one, over and over.
    statuses = [_login(client, phone.username, WRONG)[0] for _ in range(25)]
    assert statuses == [401] * 5 + [429] * 20
    # The username is locked; the address is not: a colleague signs in for the first time.
    assert _login(client, colleague.username)[0] == 200
