"""Limits, against the real server (issue 8, point 8).

Bodies over 2 MiB are refused with 413 whether the client declares their length or
streams them in chunks without one (the cap holds while reading, so a body is never
read whole into memory past it); the server answers the next request as usual.
The in-process cases (413 for too many items, 400 for deeply nested JSON, the page
size capped) are in ``test_errors.py``, ``test_sync.py`` and ``test_accounts.py``.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from flask import Flask

from outreach.models import Role
from tests.helpers import PASSWORD, create_account
from tests.servers import call, gunicorn

LIMIT = 2 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def port(app: Flask, database_url: str, tmp_path: Path) -> Iterator[int]:
    with gunicorn(database_url, tmp_path / "gunicorn") as (_process, running_port):
        yield running_port


def _token(app: Flask, port: int) -> str:
    account = create_account(app, Role.WORKER)
    status, tokens = call(
        port, "POST", "/api/v1/auth/login", {"username": account.username, "password": PASSWORD}
    )
    assert status == 200, tokens
    token: str = tokens["access_token"]
    return token


def _oversized() -> Iterator[bytes]:
    yield b'{"encounters": ["'
    for _ in range(LIMIT // CHUNK + 16):
        yield b"x" * CHUNK
    yield b'"]}'


def _send(port: int, token: str, *, chunked: bool) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    try:
        if chunked:
            connection.request(
                "POST", "/api/v1/sync", body=_oversized(), headers=headers, encode_chunked=True
            )
        else:
            body = b"".join(_oversized())
            connection.request("POST", "/api/v1/sync", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, orjson.loads(response.read())
    except (BrokenPipeError, ConnectionResetError):
        # The server may answer 413 and close before the whole body is sent.
        response = connection.getresponse()
        return response.status, orjson.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_a_body_over_the_cap_is_refused_and_the_server_goes_on(
    app: Flask, port: int, chunked: bool
) -> None:
    token = _token(app, port)
    status, body = _send(port, token, chunked=chunked)
    assert status == 413, body
    assert body["code"] == 413
    assert call(port, "GET", "/api/v1/auth/me", token=token)[0] == 200
