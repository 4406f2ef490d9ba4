"""Operator commands: accounts, demo seeding, migrations."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import datetime, time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from outreach.clock import PARIS, paris_today
from outreach.models import Encounter, Organisation, Structure, User
from outreach.services import demo
from outreach.services.demo import DEMO_ORGANISATIONS, DEMO_USERS
from outreach.services.directory import STRUCTURES_FILE
from outreach.services.geo import sector_centres
from tests.helpers import audit_events, count_rows, login
from tests.servers import ROOT

SHIPPED_STRUCTURES = json.loads(STRUCTURES_FILE.read_text("utf-8"))["structures"]


def test_create_org_and_user_with_password_from_stdin(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    org = runner.invoke(
        args=["create-org", "--slug", "gaia-paris", "--name", "Gaïa Paris", "--kind", "association"]
    )
    assert org.exit_code == 0, org.output
    assert "Created organisation gaia-paris (association)" in org.output
    user = runner.invoke(
        args=[
            "create-user",
            "--username",
            "night-team",
            "--role",
            "worker",
            "--org",
            "gaia-paris",
            "--password-stdin",
        ],
        input="a password from stdin\n",
    )
    assert user.exit_code == 0, user.output
    assert "a password from stdin" not in user.output
    assert login(client, "night-team", "a password from stdin")["role"] == "worker"
    operator_events = [e for e in audit_events(app) if e.action in {"orgs.create", "users.create"}]
    assert [e.actor_role for e in operator_events] == ["operator", "operator"]


def test_create_user_prompts_and_validates(app: Flask, runner: FlaskCliRunner) -> None:
    runner.invoke(args=["create-org", "--slug", "ville", "--name", "Ville", "--kind", "city"])
    short = runner.invoke(
        args=["create-user", "--username", "coord", "--role", "coordinator", "--org", "ville"],
        input="short\nshort\n",
    )
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output
    wrong_kind = runner.invoke(
        args=[
            "create-user",
            "--username",
            "coord",
            "--role",
            "worker",
            "--org",
            "ville",
            "--password-stdin",
        ],
        input="long enough password\n",
    )
    assert wrong_kind.exit_code == 1
    assert "may only have: coordinator" in wrong_kind.output
    no_org = runner.invoke(
        args=[
            "create-user",
            "--username",
            "x-user",
            "--role",
            "worker",
            "--org",
            "nowhere",
            "--password-stdin",
        ],
        input="long enough password\n",
    )
    assert no_org.exit_code == 1
    assert "No organisation 'nowhere'" in no_org.output
    assert "--password" not in runner.invoke(args=["create-user", "--help"]).output.replace(
        "--password-stdin", ""
    )


def test_seed_demo_creates_one_user_per_role_and_is_idempotent(
    app: Flask, runner: FlaskCliRunner, client: FlaskClient
) -> None:
    first = runner.invoke(args=["seed-demo", "--days", "3"])
    assert first.exit_code == 0, first.output
    assert f"users created: {len(DEMO_USERS)}" in first.output
    created = int(first.output.split("Encounters created: ")[1].split(".")[0])
    assert created > 20
    assert count_rows(app, Encounter) == created
    assert count_rows(app, Structure) == len(SHIPPED_STRUCTURES)
    counts = (count_rows(app, Organisation), count_rows(app, User))
    assert counts == (len(DEMO_ORGANISATIONS), len(DEMO_USERS))
    second = runner.invoke(args=["seed-demo", "--days", "3"])
    assert second.exit_code == 0
    assert "Organisations created: 0, users created: 0." in second.output
    assert "Structures added to the directory: 0." in second.output
    assert "Encounters created: 0." in second.output
    assert (count_rows(app, Organisation), count_rows(app, User)) == counts
    assert count_rows(app, Encounter) == created
    rebuilt = runner.invoke(args=["rollups", "rebuild"])
    assert "0 differed" in rebuilt.output
    password = app.config["OUTREACH_SETTINGS"].demo_password
    roles = {name: login(client, name, password)["role"] for name, _, _ in DEMO_USERS}
    assert roles == {
        "demo-worker": "worker",
        "demo-worker-2": "worker",
        "demo-orgadmin": "org_admin",
        "demo-coordinator": "coordinator",
        "demo-auditor": "auditor",
        "demo-admin": "admin",
    }
    worker_org = login(client, "demo-worker", password)["organisation"]["slug"]
    other_org = login(client, "demo-worker-2", password)["organisation"]["slug"]
    assert worker_org != other_org


def test_seed_demo_refuses_production(app: Flask) -> None:
    settings = app.config["OUTREACH_SETTINGS"].with_overrides(env="production")
    app.config["OUTREACH_SETTINGS"] = settings
    result = app.test_cli_runner().invoke(args=["seed-demo", "--days", "0"])
    assert result.exit_code == 1
    assert "not in production" in result.output


def test_the_structure_directory_loads_in_production(app: Flask) -> None:
    """Production had no way to load the shipped directory (issue 26): its own command."""
    settings = app.config["OUTREACH_SETTINGS"].with_overrides(env="production")
    app.config["OUTREACH_SETTINGS"] = settings
    runner = app.test_cli_runner()
    first = runner.invoke(args=["directory", "load"])
    assert first.exit_code == 0, first.output
    assert count_rows(app, Structure) == len(SHIPPED_STRUCTURES)
    assert f"Structures added to the directory: {len(SHIPPED_STRUCTURES)}." in first.output
    assert count_rows(app, User) == 0  # only the directory, no account
    again = runner.invoke(args=["directory", "load"])
    assert "Structures added to the directory: 0." in again.output


def test_seed_demo_generates_and_keeps_a_development_password(app: Flask) -> None:
    settings = app.config["OUTREACH_SETTINGS"].with_overrides(env="development", demo_password=None)
    app.config["OUTREACH_SETTINGS"] = settings
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo", "--days", "0"])
    second = runner.invoke(args=["seed-demo", "--days", "0"])
    assert first.exit_code == second.exit_code == 0
    line = next(x for x in first.output.splitlines() if x.startswith("Demo password"))
    assert line in second.output
    password = line.split(": ", 1)[1]
    assert login(app.test_client(), "demo-admin", password)["role"] == "admin"


def test_demo_days_end_before_today_so_seeding_works_at_any_hour() -> None:
    # A night round ends after midnight: yesterday's would be in the future for the
    # first hours of today, and the sync refuses it (seeding failed at 00:30 in Paris).
    days = demo.worked_days(3)
    assert days == sorted(days)
    assert len(days) == 3
    start_of_today = datetime.combine(paris_today(), time(0), PARIS)
    centres = sector_centres()
    latest = max(
        datetime.fromisoformat(moment)
        for seed in range(200)
        for day in days
        for items in [demo.field_day(random.Random(seed), "team", ("stalingrad",), day, centres)]
        for moment in [s["ended_at"] for s in items["shifts"]]
        + [e["occurred_at"] for e in items["encounters"]]
    )
    assert latest < start_of_today


# Nothing listens on port 1: the connection is refused.
UNREACHABLE = ("postgresql+psycopg://outreach@127.0.0.1:1/outreach", "Connection refused")
# A database never migrated (where an empty database at no revision is no error).
UNMIGRATED = ("sqlite:///{instance}/empty.db", "no such table")
OPERATOR_COMMANDS = (["audit", "verify"], ["rollups", "rebuild"], ["retention", "purge"])


@pytest.mark.parametrize(
    ("database_url", "cause", "command"),
    [
        *((*UNREACHABLE, command) for command in (*OPERATOR_COMMANDS, ["db", "current"])),
        *((*UNMIGRATED, command) for command in OPERATOR_COMMANDS),
    ],
)
def test_a_database_error_is_one_line_and_exit_1(
    database_url: str, cause: str, command: list[str], tmp_path: Path
) -> None:
    url = database_url.format(instance=tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *command],
        env={**os.environ, "OUTREACH_INSTANCE_PATH": str(tmp_path), "OUTREACH_DATABASE_URL": url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("Error: database error (OperationalError): ")
    assert cause in errors[0]
