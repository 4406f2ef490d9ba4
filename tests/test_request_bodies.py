"""Request bodies that are not UTF-8 JSON are refused, never "stored" as nothing.

Before issue 26, a body of other bytes sent as ``application/json`` (gzip without its
header, UTF-16, random bytes) got 200 with ``results: []`` from ``POST /sync``, and a
``PATCH`` changed nothing with a 200: the phone believed its items stored. Gzip is now
accepted with ``Content-Encoding: gzip``, the 2 MiB cap applying to the decompressed
body; any other coding is a 415.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient

from outreach.models import Encounter, Role
from tests.helpers import count_rows
from tests.payloads import encounter

JSON = {"Content-Type": "application/json"}
LIMIT = 2 * 1024 * 1024


def _batch() -> bytes:
    return orjson.dumps({"encounters": [encounter() for _ in range(3)]})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(gzip.compress(_batch()), id="gzip-without-its-header"),
        pytest.param(
            orjson.dumps({"encounters": [encounter()]}).decode().encode("utf-16"), id="utf-16"
        ),
        pytest.param(b"\xff\xfe\x00" + os.urandom(64), id="random-bytes"),
    ],
)
def test_a_body_that_is_not_utf8_json_is_a_400(
    app: Flask,
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    body: bytes,
) -> None:
    worker = auth_headers(Role.WORKER)
    response = client.post("/api/v1/sync", data=body, headers={**worker, **JSON})
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert answer["code"] == 400
    assert "not UTF-8" in str(answer["errors"])
    assert count_rows(app, Encounter) == 0


def test_a_patch_that_is_not_utf8_json_is_a_400_and_changes_nothing(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    admin = auth_headers(Role.ORG_ADMIN, "assoc-a")
    item = encounter(setting="rue")
    created = client.post("/api/v1/sync", json={"encounters": [item]}, headers=admin)
    assert created.get_json()["counts"]["created"] == 1
    body = orjson.dumps({"setting": "metro"}).decode().encode("utf-16")
    response = client.patch(
        f"/api/v1/encounters/{item['id']}", data=body, headers={**admin, **JSON}
    )
    assert response.status_code == 400
    read = client.get(f"/api/v1/encounters/{item['id']}", headers=admin).get_json()
    assert read["setting"] == "rue"


def test_a_gzip_body_with_its_header_is_accepted(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    worker = auth_headers(Role.WORKER)
    response = client.post(
        "/api/v1/sync",
        data=gzip.compress(_batch()),
        headers={**worker, **JSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["counts"]["created"] == 3
    assert count_rows(app, Encounter) == 3


def test_a_gzip_body_over_the_cap_once_decompressed_is_a_413(
    app: Flask, client: FlaskClient, auth_headers: Callable[..., dict[str, str]]
) -> None:
    worker = auth_headers(Role.WORKER)
    # A few kilobytes on the wire, 3 MiB of JSON once inflated: a compression bomb.
    padding = " " * (3 * 1024 * 1024)
    bomb = gzip.compress(b'{"encounters": []' + padding.encode() + b"}")
    assert len(bomb) < 64 * 1024
    response = client.post(
        "/api/v1/sync", data=bomb, headers={**worker, **JSON, "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert response.get_json()["code"] == 413
    # Just under the cap once inflated still passes.
    fits = b'{"encounters": []' + b" " * (LIMIT - 100) + b"}"
    response = client.post(
        "/api/v1/sync",
        data=gzip.compress(fits),
        headers={**worker, **JSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    ("coding", "body", "status"),
    [
        pytest.param("br", b"\x0b\x02\x80{}\x03", 415, id="br"),
        pytest.param("deflate", b"x\x9c\xab\xae\x05\x00\x01u\x00\xf9", 415, id="deflate"),
        pytest.param("gzip", b"\x1f\x8b\x08\x00 certainly not gzip", 400, id="not-gzip"),
        pytest.param("gzip", gzip.compress(b"{}", mtime=0)[:-4], 400, id="cut-gzip"),
    ],
)
def test_other_codings_are_a_415_and_broken_gzip_a_400(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    coding: str,
    body: bytes,
    status: int,
) -> None:
    worker = auth_headers(Role.WORKER)
    response = client.post(
        "/api/v1/sync", data=body, headers={**worker, **JSON, "Content-Encoding": coding}
    )
    assert response.status_code == status
    assert response.get_json()["code"] == status
