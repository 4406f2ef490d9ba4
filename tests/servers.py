"""Servers a test starts: the service under real gunicorn, for the tests that need a
process to kill or stream to, and a PostgreSQL cluster a test may stop."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
# The PostgreSQL server programs (initdb, pg_ctl) of Debian's packages, if installed.
POSTGRES_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@contextmanager
def gunicorn(
    database_url: str, instance: Path, log: Path | None = None, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``gunicorn.conf.py`` on ``database_url``, with one worker (so the one to kill is
    known) unless ``settings`` (``OUTREACH_*`` variables) say otherwise. Servers given the
    same ``instance`` share its generated secrets, as the hosts of one deployment do.
    What the server logs goes to ``log``, if given."""
    port = free_port()
    environment = {
        **os.environ,
        "OUTREACH_ENV": "development",
        "OUTREACH_DATABASE_URL": database_url,
        "OUTREACH_INSTANCE_PATH": str(instance),
        "OUTREACH_WORKERS": "1",
        **settings,
        "OUTREACH_BIND": f"127.0.0.1:{port}",
    }
    with open(log or os.devnull, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:app"],
            cwd=ROOT,
            env=environment,
            stderr=stderr,
        )
    try:
        wait_until_ready(process, port)
        yield process, port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def wait_until_ready(process: subprocess.Popen[bytes], port: int) -> None:
    """Until a gunicorn worker answers ``/readyz`` with 200."""

    def ready() -> bool:
        status, _body = call(port, "GET", "/api/v1/readyz", timeout=0.2)
        return status == 200

    wait_for(process, ready, "gunicorn")


def wait_for(process: subprocess.Popen[bytes], ready: Callable[[], bool], name: str) -> None:
    """Try ``ready`` until it holds (a refused connection is a no), while ``process``
    runs; between tries, a pause (a server booting gives nothing else to wait on)."""
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited")
        try:
            if ready():
                return
        except OSError:
            pass
        idle_wait(0.1)
    raise RuntimeError(f"{name} did not become ready")


def idle_wait(seconds: float) -> None:
    """Wait where there is nothing to wait on but the clock (a server booting)."""
    threading.Event().wait(seconds)


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    """One request on its own connection: the status and the decoded JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        payload = None if body is None else orjson.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, orjson.loads(data) if data else None
    finally:
        connection.close()


def in_terminal(
    command: list[str], settings: dict[str, str], instance: Path, timeout: float = 120
) -> tuple[int, str]:
    """``flask --app app COMMAND`` in a pseudo-terminal, as an operator runs it: its exit
    status and everything it drew (progress bars draw only on a terminal)."""
    import pty

    primary, secondary = pty.openpty()
    environment = {
        **os.environ,
        "OUTREACH_ENV": "development",
        "OUTREACH_INSTANCE_PATH": str(instance),
        **settings,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", *command],
        cwd=ROOT,
        env=environment,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    drawn = bytearray()
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        drawn += chunk
    os.close(primary)
    return process.wait(timeout=timeout), drawn.decode("utf-8", "replace")


@dataclass
class Cluster:
    """A throwaway PostgreSQL server this test may stop and start."""

    home: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=2"

    def run(self, program: str, *args: str, check: bool = True) -> None:
        assert POSTGRES_BIN is not None
        command = [str(POSTGRES_BIN / program), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=check, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.home / "log")
        self.run("pg_ctl", "-D", str(self.home / "data"), "-o", options, "-l", log, "-w", "start")

    def stop(self, check: bool = True) -> None:
        self.run(
            "pg_ctl", "-D", str(self.home / "data"), "-m", "immediate", "-w", "stop", check=check
        )
