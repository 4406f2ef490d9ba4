"""Brute force (issue 8, point 10): lockouts shared through Redis, and no timing oracle.

The single-process lockout and the per-client rate are in ``test_auth.py`` and
``test_errors.py``. Here the counts are shared through the Redis server on
127.0.0.1:6379: the username's between two real gunicorn servers of two workers each,
as two hosts of one deployment; the client's rate between two application instances,
which lets the test give each request its own address. What one counts, the other
enforces; with the in-memory storage they do not (the control). Each test gets its own
pepper, so its keys in the shared Redis are its own.

Unknown usernames and wrong passwords must not be told apart by time. Rather than
time them (a flaky assertion), the test counts the work: each answer costs exactly
one argon2id verification with the same parameters, the decoy hash standing in for
the missing account's.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from argon2 import extract_parameters
from argon2.profiles import Parameters
from flask import Flask
from flask.testing import FlaskClient
from limits.storage import MemoryStorage

from outreach import create_app
from outreach.extensions import db
from outreach.models import Role
from outreach.services.errors import TooManyAttempts
from outreach.services.login_guard import LoginGuard
from tests.helpers import PASSWORD, Account, create_account, make_settings, unavailable
from tests.servers import call, gunicorn

REDIS_URL = "redis://127.0.0.1:6379/0"
LOGIN = "/api/v1/auth/login"


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as error:
        unavailable(f"Redis unreachable at {REDIS_URL}: {error}")
    return REDIS_URL


def _two_workers(
    database_url: str, tmp_path: Path, storage: str, **overrides: Any
) -> tuple[Flask, Flask]:
    pepper = "test-pepper-" + secrets.token_hex(24)
    apps = tuple(
        create_app(
            make_settings(
                database_url,
                tmp_path / name,
                ratelimit_storage_url=storage,
                pepper=pepper,
                **overrides,
            )
        )
        for name in ("first", "second")
    )
    return apps[0], apps[1]


def _login(client: FlaskClient, username: str, password: str, address: str = "127.0.0.1") -> int:
    body = {"username": username, "password": password}
    return client.post(LOGIN, json=body, environ_base={"REMOTE_ADDR": address}).status_code


@contextmanager
def _two_servers(database_url: str, deployment: Path, storage: str) -> Iterator[tuple[int, int]]:
    """Two gunicorn servers of two workers each, one deployment: the ports."""
    settings = {
        "OUTREACH_RATELIMIT_STORAGE_URL": storage,
        "OUTREACH_WORKERS": "2",
        "OUTREACH_LOGIN_MAX_FAILURES": "5",
        # The username's count is under test, not the client's (every request here
        # comes from 127.0.0.1).
        "OUTREACH_LOGIN_CLIENT_MAX_FAILURES": "10000",
        "OUTREACH_LOGIN_RATE": "10000 per minute",
    }
    with (
        gunicorn(database_url, deployment, **settings) as (_, first),
        gunicorn(database_url, deployment, **settings) as (_, second),
    ):
        yield first, second


WRONG = "wrong password here"


def _credentials(account: Account, password: str = WRONG) -> dict[str, str]:
    return {"username": account.username, "password": password}


def _taking_turns(ports: tuple[int, int], account: Account) -> list[int]:
    """Six failed logins taking turns between the servers, then the right password on
    each: the statuses of the two right-password logins."""
    failures = [call(port, "POST", LOGIN, _credentials(account))[0] for port in ports * 3]
    assert failures[:5] == [401] * 5, failures  # the sixth is refused when shared
    return [call(port, "POST", LOGIN, _credentials(account, PASSWORD))[0] for port in ports]


def _all_at_once(ports: tuple[int, int], account: Account, guesses: int) -> list[int]:
    """``guesses`` wrong passwords sent together, half to each server: their statuses."""
    start = threading.Barrier(guesses)

    def guess(number: int) -> int:
        start.wait()
        return call(ports[number % 2], "POST", LOGIN, _credentials(account))[0]

    with ThreadPoolExecutor(max_workers=guesses) as pool:
        return list(pool.map(guess, range(guesses)))


def test_a_username_locked_through_one_gunicorn_server_is_locked_on_the_other(
    app: Flask, database_url: str, tmp_path: Path, redis_url: str
) -> None:
    with _two_servers(database_url, tmp_path / "redis", redis_url) as ports:
        # The right password is refused during the lock, on both servers.
        assert _taking_turns(ports, create_account(app, Role.WORKER)) == [429, 429]
        # Sixteen guesses at once, on four worker processes with four threads each:
        # five are checked, not one per thread that got there before a failure counted.
        rushed = create_account(app, Role.WORKER)
        statuses = _all_at_once(ports, rushed, 16)
        assert sorted(statuses) == [401] * 5 + [429] * 11, statuses
        assert call(ports[0], "POST", LOGIN, _credentials(rushed, PASSWORD))[0] == 429
    # The control: three failures on each of four worker processes lock nothing.
    with _two_servers(database_url, tmp_path / "memory", "memory://") as ports:
        assert _taking_turns(ports, create_account(app, Role.WORKER)) == [200, 200]


def test_a_client_rate_counted_on_one_worker_holds_on_the_other(
    app: Flask, database_url: str, tmp_path: Path, redis_url: str
) -> None:
    first, second = _two_workers(database_url, tmp_path, redis_url, login_rate="3 per minute")
    # An address of this test's own: the rate's key in Redis is the client's address.
    address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    statuses = [
        _login(worker.test_client(), "nobody-at-all", "some password here", address)
        for worker in (first, second, first, second)
    ]
    assert statuses == [401, 401, 401, 429]
    # The counters are keyed by a keyed hash of the address, never the address itself.
    keys = redis.Redis.from_url(redis_url).keys("*")
    assert keys
    assert not [key for key in keys if address.encode() in key]
    for flask_app in (first, second):
        db.engine_for(flask_app).dispose()


class _CountingHasher:
    """The real argon2 hasher, noting the parameters of each hash it verifies against."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.verified: list[Parameters] = []

    def verify(self, password_hash: str, password: str) -> Any:
        self.verified.append(extract_parameters(password_hash))
        return self._real.verify(password_hash, password)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_unknown_user_and_wrong_password_cost_the_same_verification(
    app: Flask,
    client: FlaskClient,
    make_account: Callable[..., Account],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = make_account(Role.WORKER)
    passwords = app.extensions["outreach.security"].passwords
    counting = _CountingHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", counting)

    assert _login(client, account.username, "not the password at all") == 401
    wrong = list(counting.verified)
    counting.verified.clear()
    assert _login(client, "nobody-by-that-name", "not the password at all") == 401
    unknown = list(counting.verified)

    assert len(wrong) == len(unknown) == 1
    assert wrong == unknown  # same time, memory and parallelism cost


def test_a_client_past_its_own_limit_uses_up_no_username_tries() -> None:
    guard = LoginGuard(
        MemoryStorage(), max_failures_per_user=5, max_failures_per_client=2, lockout_seconds=60
    )
    # Two guesses in flight use up the client's tries; a third, sent meanwhile, is
    # refused before any password is checked.
    guard.attempt("user", "attacker")
    guard.attempt("user", "attacker")
    with pytest.raises(TooManyAttempts) as refused:
        guard.attempt("user", "attacker")
    assert 1 <= refused.value.retry_after <= 60
    guard.failed("user", "attacker")
    guard.failed("user", "attacker")
    # The username has had two tries, not three: three are left to its owner, the last
    # one right (had the refused try counted, the third would find the username locked).
    # The owner moves between networks, so its client limit is not what is tested here.
    for network in ("home", "street"):
        guard.attempt("user", network)
        guard.failed("user", network)
    guard.attempt("user", "office")
    guard.succeeded("user", "office")
