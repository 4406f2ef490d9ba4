"""Structured logs (issue 28): one JSON object per line, from the app and from gunicorn,
an access line per request with its request id, role and trace id.

What a line may never hold (tokens, passwords, coordinates, person refs) is checked
over a whole scenario by tests/test_secrets.py, on these same JSON lines.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from config.logs import formatter
from outreach.models import Role
from tests.servers import gunicorn

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def lines_of(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Each captured record as the shipped formatter writes it, parsed back."""
    shipped = formatter()
    return [json.loads(shipped.format(record)) for record in caplog.records]


def test_each_request_leaves_one_access_line(
    client: FlaskClient,
    auth_headers: Callable[..., dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = auth_headers(Role.WORKER)
    caplog.set_level(logging.INFO)
    client.get(
        "/api/v1/encounters?per_page=5",
        headers={**worker, "traceparent": TRACEPARENT, "X-Request-ID": "phone-req-0001"},
    )
    client.get("/api/v1/healthz", headers={"traceparent": "00-not-a-trace-01"})
    client.get("/api/v1/auth/me")
    access = [line for line in lines_of(caplog) if line["logger"] == "outreach.access"]
    assert len(access) == 3
    listed, health, refused = access
    assert listed["time"].endswith("+00:00")
    assert {key: listed[key] for key in ("level", "method", "path", "status", "role")} == {
        "level": "INFO",
        "method": "GET",
        "path": "/api/v1/encounters",  # never the query string
        "status": 200,
        "role": "worker",
    }
    assert listed["request_id"] == "phone-req-0001"
    assert listed["trace_id"] == TRACE_ID
    assert listed["duration_ms"] >= 0
    # A malformed traceparent is ignored; every request has an id all the same.
    assert "trace_id" not in health
    assert len(health["request_id"]) == 32
    assert (refused["status"], refused["role"]) == (401, None)


def test_gunicorn_and_the_app_write_the_same_json_lines(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "gunicorn.log"
    with gunicorn(database_url, tmp_path / "instance", log=log) as (_, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/v1/healthz", headers={"traceparent": TRACEPARENT})
        assert connection.getresponse().read()
        connection.close()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "outreach.access"} <= loggers
    traced = [line for line in lines if line.get("trace_id") == TRACE_ID]
    assert [(line["path"], line["status"]) for line in traced] == [("/api/v1/healthz", 200)]
