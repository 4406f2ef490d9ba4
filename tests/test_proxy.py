"""Slow clients and the proxy in front (issue 8, point 8), with nginx running the very
``deploy/nginx/outreach-proxy.conf`` that a deployment installs, before real gunicorn.

gunicorn's ``gthread`` worker gives a connection to one of its threads as soon as bytes
arrive, and that thread reads the request itself: a client that stops half-way through
its headers or its body (a phone on a failing link, or slowloris) holds the thread. The
control shows it on bare gunicorn: with every thread of a one-worker server held by
such clients, a plain request gets no answer until they finish. Through nginx the same
clients hold nothing of gunicorn: the plain request is answered while they stall, and
once they finish, their whole requests reach the service.

The same proxy settings pass each phone's address on (and only the address nginx saw,
whatever the phone claims), give the service's own 413 under its cap and nginx's in the
same envelope above it, and answer 503 in the envelope when gunicorn is down.

Needs nginx (``make setup-dev`` installs Debian's nginx-light): skipped without it
locally, failed under CI.
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import free_port, unavailable
from tests.servers import ROOT, gunicorn, wait_for

PROXY_SETTINGS = ROOT / "deploy" / "nginx" / "outreach-proxy.conf"
LOGIN = "/api/v1/auth/login"
READY = "/api/v1/readyz"
THREADS = 4  # of the one gunicorn worker: OUTREACH_THREADS, gunicorn.conf.py's default
WAIT = 30.0  # how long a request that should be answered may take on a loaded CI machine


@pytest.fixture
def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None:
        unavailable("nginx is not installed (make setup-dev installs it)")
    return found


@contextmanager
def nginx(binary: str, upstream_port: int, directory: Path) -> Iterator[int]:
    """nginx on a free port, in front of ``upstream_port``, with the shipped settings."""
    directory.mkdir(parents=True)
    port = free_port()
    user = "user root root;\n" if os.geteuid() == 0 else ""  # temp files in our 0700 tmp
    temporary = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    configuration = directory / "nginx.conf"
    configuration.write_text(
        f"""{user}daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temporary}
    upstream outreach {{
        server 127.0.0.1:{upstream_port};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        include {PROXY_SETTINGS};
    }}
}}
"""
    )
    command = [binary, "-c", str(configuration), "-p", str(directory), "-e", "stderr"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(process, lambda: _listening(port), "nginx")
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)
        process.wait(timeout=30)


def _listening(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


@dataclass
class Exchange:
    """One HTTP/1.1 request on its own socket, written and read by hand so that a test
    can stop half-way through the body, or wait for an answer that does not come."""

    connection: socket.socket
    rest: bytes = b""

    @classmethod
    def open(
        cls,
        port: int,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        stall: str | None = None,
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> Exchange:
        """Send the request from the address ``source``: all of it, or, to ``stall``
        half-way, only half of its headers (``"headers"``) or its headers and five bytes
        of its body (``"body"``)."""
        connection = socket.create_connection(
            ("127.0.0.1", port), timeout=WAIT, source_address=(source, 0)
        )
        lines = [f"{method} {path} HTTP/1.1", "Host: outreach.test", "Connection: close"]
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        whole = head + body
        cut = {None: len(whole), "headers": len(head) // 2, "body": len(head) + 5}[stall]
        connection.sendall(whole[:cut])
        return cls(connection, whole[cut:])

    def finish(self) -> None:
        self.connection.sendall(self.rest)
        self.rest = b""

    def answered_within(self, seconds: float) -> bool:
        """Whether the first byte of an answer arrives within ``seconds``; it is kept."""
        self.connection.settimeout(seconds)
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return False
        finally:
            self.connection.settimeout(WAIT)
        return bool(first)

    def response(self) -> tuple[int, dict[str, str], Any]:
        """Read the answer as a phone does, by its length (gunicorn closes a connection
        only once the client has: waiting for its close first would stall both)."""
        answer = http.client.HTTPResponse(self.connection)
        try:
            answer.begin()
            payload = answer.read()
        finally:
            self.connection.close()
        headers = {name.lower(): value for name, value in answer.getheaders()}
        return answer.status, headers, orjson.loads(payload) if payload else None


def _login_body(username: str = "nobody-by-that-name") -> bytes:
    return orjson.dumps({"username": username, "password": "not the password at all"})


def _tricklers(port: int, count: int) -> list[Exchange]:
    """Clients that stall half-way through their login, in turn in the headers and in
    the body (each a different username, so that no lockout answers for the service)."""
    return [
        Exchange.open(
            port,
            "POST",
            LOGIN,
            _login_body(f"nobody-{number}"),
            stall=("headers", "body")[number % 2],
        )
        for number in range(count)
    ]


def test_clients_stalling_half_way_hold_every_thread_of_bare_gunicorn(
    database_url: str, tmp_path: Path
) -> None:
    # The control: what the proxy is for. Its connections are accepted in order, so the
    # plain request waits behind the stalled ones for a thread.
    with gunicorn(database_url, tmp_path / "instance") as (_, port):
        stalled = _tricklers(port, THREADS)
        plain = Exchange.open(port, "GET", READY)
        assert not plain.answered_within(3.0)
        for client in stalled:
            client.finish()
        assert [client.response()[0] for client in stalled] == [401] * THREADS
        assert plain.response()[0] == 200


def test_behind_nginx_stalling_clients_hold_no_gunicorn_thread(
    database_url: str, tmp_path: Path, nginx_binary: str
) -> None:
    with (
        gunicorn(database_url, tmp_path / "instance") as (_, upstream),
        nginx(nginx_binary, upstream, tmp_path / "nginx") as port,
    ):
        stalled = _tricklers(port, 4 * THREADS)
        plain = Exchange.open(port, "GET", READY)
        assert plain.answered_within(WAIT)
        status, headers, _ = plain.response()
        assert status == 200
        assert headers["x-content-type-options"] == "nosniff"  # the service's own answer
        for client in stalled:
            client.finish()
        answers = [client.response() for client in stalled]
        assert [status for status, _, _ in answers] == [401] * len(stalled)
        assert {body["code"] for _, _, body in answers} == {401}


def test_behind_nginx_each_phone_is_counted_by_the_address_nginx_saw(
    database_url: str, tmp_path: Path, nginx_binary: str
) -> None:
    rated = {"OUTREACH_TRUSTED_PROXIES": "1", "OUTREACH_LOGIN_RATE": "3 per minute"}
    with (
        gunicorn(database_url, tmp_path / "instance", **rated) as (_, upstream),
        nginx(nginx_binary, upstream, tmp_path / "nginx") as port,
    ):

        def login(source: str, claimed: str | None = None) -> int:
            forged = {"X-Forwarded-For": claimed} if claimed else {}
            exchange = Exchange.open(
                port, "POST", LOGIN, _login_body(), headers=forged, source=source
            )
            return exchange.response()[0]

        # A phone claiming a new address each time is still counted as itself...
        first_phone = [login("127.0.0.2", f"198.51.100.{n}") for n in range(4)]
        assert first_phone == [401, 401, 401, 429]
        # ...and another phone behind the same proxy is not held back by it.
        assert login("127.0.0.3") == 401


def test_behind_nginx_refusals_keep_the_error_envelope(
    database_url: str, tmp_path: Path, nginx_binary: str
) -> None:
    with (
        gunicorn(database_url, tmp_path / "instance") as (server, upstream),
        nginx(nginx_binary, upstream, tmp_path / "nginx") as port,
    ):
        # Over the service's 2 MiB cap: the service's own 413 in its envelope...
        three_mib = b'{"username": "' + b"x" * (3 << 20) + b'"}'
        status, _, body = Exchange.open(port, "POST", LOGIN, three_mib).response()
        assert (status, body["code"]) == (413, 413)
        # ...and far over it, nginx's, in the same envelope, without buffering it all.
        five_mib = b'{"username": "' + b"x" * (5 << 20) + b'"}'
        far_over = Exchange.open(port, "POST", LOGIN, five_mib, stall="body")
        status, headers, body = far_over.response()
        assert headers["content-type"].startswith("application/json")
        assert (status, body["code"], body["status"]) == (
            413,
            413,
            "Payload Too Large",
        )
        # nginx's own answer names no version (server_tokens off).
        assert headers["server"] == "nginx"
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        status, headers, body = Exchange.open(port, "GET", READY).response()
        assert (status, body["code"]) == (503, 503)
        assert headers["retry-after"] == "5"


@pytest.mark.parametrize(
    ("path", "body_size", "refused"),
    [
        # An expired token on a large sync: refused before its body is read.
        ("/api/v1/sync", 1 << 20, 401),
        # Over the 2 MiB cap: refused unread by Werkzeug.
        (LOGIN, 3 << 20, 413),
    ],
)
def test_a_refusal_reads_the_rest_of_the_body_so_the_answer_is_not_reset(
    database_url: str, tmp_path: Path, path: str, body_size: int, refused: int
) -> None:
    # gunicorn reads at most 64 KiB of a body the application left unread, then closes
    # the connection under a client still sending it; the reset can destroy the answer
    # (nginx then answers 503). Once the service has read the rest, the connection is
    # whole: the same connection serves the next request.
    with gunicorn(database_url, tmp_path / "instance") as (_, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        big = b'{"username": "' + b"x" * body_size + b'"}'
        connection.request("POST", path, body=big, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert (response.status, orjson.loads(response.read())["code"]) == (refused, refused)
        connection.request("GET", "/api/v1/healthz")
        again = connection.getresponse()
        assert again.status == 200
        connection.close()


def test_behind_nginx_json_leaves_gzipped(
    database_url: str, tmp_path: Path, nginx_binary: str
) -> None:
    with (
        gunicorn(database_url, tmp_path / "instance") as (_, upstream),
        nginx(nginx_binary, upstream, tmp_path / "nginx") as port,
    ):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        connection.request("GET", "/api/openapi.json", headers={"Accept-Encoding": "gzip"})
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200
        assert response.getheader("Content-Encoding") == "gzip"
        assert "Accept-Encoding" in (response.getheader("Vary") or "")
        document = orjson.loads(gzip.decompress(body))
        assert document["openapi"].startswith("3.")
        connection.request("GET", "/api/openapi.json")
        plain = connection.getresponse()
        assert plain.getheader("Content-Encoding") is None
        assert len(plain.read()) > 4 * len(body)
        connection.close()
