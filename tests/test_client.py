"""The OpenAPI document as integrators use it: validated, and a client generated from it.

``openapi-spec-validator`` checks the served document; ``openapi-python-client`` (the
version pinned in requirements-dev.txt) generates a client from it into a temporary
directory, and a phone's and the plan's day is driven through that client alone, its
requests sent to this app over httpx's WSGI transport. Every response must parse into
the model the document promises: a response the generator could not type would come
back as ``Error``, ``Any`` or ``None`` and fail the test.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from outreach.clock import PARIS, paris_today
from outreach.models import Role
from outreach.services import periods
from schemas.vocabulary import vocabularies
from tests.helpers import PASSWORD, Account
from tests.payloads import STALINGRAD

OPENAPI = "/api/openapi.json"
PACKAGE = "outreach_client"
# Enough encounters in one hexagon for its counts to be published (k = 11).
ENCOUNTERS = 12


def stats_period(today: date) -> dict[str, Any]:
    """The period every stats call of the scenario asks for, as the generated client's
    keyword arguments: the last whole week of the grid, as protected readers see it."""
    return {"period": periods.last_whole_week(today).name}


def report_year(today: date) -> int:
    """A year published to protected readers whatever today is: last month's."""
    return (today.replace(day=1) - timedelta(days=1)).year


def test_the_served_document_is_valid_openapi(client: FlaskClient) -> None:
    document = client.get(OPENAPI).get_json()
    validate(document)
    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert {"sync", "get_summary", "get_map", "login", "verify_audit_log"} <= set(operation_ids)
    schemas = document["components"]["schemas"]
    body = schemas["SyncBody"]["properties"]
    assert body["shifts"]["items"] == {"$ref": "#/components/schemas/Shift"}
    assert body["encounters"]["items"] == {"$ref": "#/components/schemas/Encounter"}
    assert "PaginationMetadata" not in schemas
    # Every level of a geometry says what its items are.
    ring = schemas["Polygon"]["properties"]["coordinates"]["items"]
    assert ring["items"]["items"] == {"type": "number"}
    age_band = schemas["Person"]["properties"]["age_band"]
    assert dict(zip(age_band["enum"], age_band["x-enum-varnames"], strict=True))["<18"] == (
        "UNDER_18"
    )
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if status.isdigit() and int(status) >= 400 and "$ref" not in response:
                    assert "content" in response, (method, path, status)
    report = document["paths"]["/api/v1/reports/activity"]["get"]["responses"]["200"]
    assert set(report["content"]) == {"application/json", "text/csv"}
    vocabularies = document["paths"]["/api/v1/vocabularies"]["get"]
    assert {"in": "header", "name": "If-None-Match"}.items() <= vocabularies["parameters"][
        0
    ].items()


@pytest.fixture
def generated(client: FlaskClient, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package generated from the served document, importable for the test."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(client.get(OPENAPI).get_json()))
    config = tmp_path / "config.json"
    # No formatting pass: the generated code is run, not read.
    config.write_text(json.dumps({"post_hooks": []}))
    target = tmp_path / "site"
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(target / PACKAGE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Anything the generator had to leave out or leave untyped, it warns about.
    assert "Warning" not in done.stdout, done.stdout
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(target))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_day_through_the_generated_client(
    app: Flask, generated: ModuleType, make_account: Callable[..., Account]
) -> None:
    models = _module("models")
    transport = httpx.WSGITransport(app=app)
    anonymous = generated.Client(
        base_url="http://outreach.test", httpx_args={"transport": transport}
    )

    def signed_in(role: Role) -> Any:
        account = make_account(role)
        answer = _call(
            "auth.login", client=anonymous, body=models.Login(account.username, PASSWORD)
        )
        assert isinstance(answer, models.TokenResponse)
        return generated.AuthenticatedClient(
            base_url="http://outreach.test",
            token=answer.access_token,
            httpx_args={"transport": transport},
        )

    worker = signed_in(Role.WORKER)

    # The phone builds its forms, then revalidates them with the ETag it was given.
    first = _detailed("directory.get_vocabularies", client=worker)
    assert first.status_code == 200
    assert isinstance(first.parsed, models.Vocabularies)
    assert [code.code for code in first.parsed.genders] == [
        g["code"] for g in vocabularies()["genders"]
    ]
    etag = first.headers["ETag"]
    again = _detailed("directory.get_vocabularies", client=worker, if_none_match=etag)
    assert again.status_code == 304
    assert again.parsed is None
    assert again.content == b""

    # A shift and its encounters of the last whole week (what protected readers see by
    # default), sent twice: created, then duplicates.
    week = periods.last_whole_week(paris_today())
    started = datetime.combine(week.start + timedelta(days=2), time(14), PARIS).astimezone(UTC)
    shift = models.Shift(
        id=uuid.uuid4(),
        kind=models.ShiftKind.RDR,
        started_at=started,
        ended_at=started + timedelta(hours=4),
        planned_sectors=[models.ShiftPlannedSectorsItem.STALINGRAD],
    )
    encounters = [
        models.Encounter(
            id=uuid.uuid4(),
            occurred_at=started + timedelta(minutes=10 * number),
            shift_id=shift.id,
            location=models.Location(lat=STALINGRAD[0], lon=STALINGRAD[1], accuracy_m=15.0),
            setting=models.EncounterSetting.RUE,
            people=1,
            person=models.Person(
                age_band=models.PersonAgeBand.AGE_BAND_25_TO_34,
                gender=models.PersonGender.F,
                first_contact=True,
            ),
            kits=models.EncounterKits.from_dict({"kit_base": 2}),
            services=[models.EncounterServicesItem.ECOUTE],
        )
        for number in range(ENCOUNTERS)
    ]
    batch = models.SyncBody(shifts=[shift], encounters=encounters)
    sent = _call("sync.sync", client=worker, body=batch)
    assert isinstance(sent, models.SyncResponse)
    assert sent.counts.created == ENCOUNTERS + 1
    assert {result.status for result in sent.results} == {models.ItemResultStatus.CREATED}
    resent = _call("sync.sync", client=worker, body=batch)
    assert isinstance(resent, models.SyncResponse)
    assert resent.counts.duplicate == ENCOUNTERS + 1

    # The association's org_admin corrects one encounter.
    org_admin = signed_in(Role.ORG_ADMIN)
    amended = _call(
        "encounters.amend_encounter",
        encounters[0].id,
        client=org_admin,
        body=models.EncounterAmend(setting=models.EncounterAmendSetting.METRO),
    )
    assert isinstance(amended, models.StoredEncounter)
    assert amended.version == 2
    assert isinstance(amended.person, models.StoredPerson)

    # The plan's coordinator reads the figures, the maps and the annual report.
    coordinator = signed_in(Role.COORDINATOR)
    today = paris_today()
    summary = _call("stats.get_summary", client=coordinator, **stats_period(today))
    assert isinstance(summary, models.Summary)
    assert summary.counts.encounters is not None
    hexagons = _call("stats.get_map", client=coordinator, **stats_period(today))
    assert isinstance(hexagons, models.HexagonMap)
    assert hexagons.features
    for feature in hexagons.features:
        assert isinstance(feature.geometry, models.Polygon)
        assert len(feature.geometry.coordinates[0]) == 7  # a closed hexagon
        assert isinstance(feature.properties, models.CellProperties)
    sectors = _call("stats.get_sectors", client=coordinator, **stats_period(today))
    assert isinstance(sectors, models.SectorMap)
    assert all(isinstance(feature.geometry, models.Polygon) for feature in sectors.features)
    hotspots = _call("stats.get_hotspots", client=coordinator)
    assert isinstance(hotspots, models.Hotspots)
    report = _call("reports.get_activity_report", client=coordinator, year=report_year(today))
    assert isinstance(report, models.ActivityReport)
    # The same operation's CSV body, through the generated client's own connection.
    sheet = coordinator.get_httpx_client().get(
        "/api/v1/reports/activity", params={"year": report_year(today), "format": "csv"}
    )
    assert sheet.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(sheet.text.lstrip("\ufeff")), delimiter=";"))
    keys = [row[rows[0].index("Clé")] for row in rows[1:]]
    assert len(keys) == len(set(keys))

    # The health authority's auditor verifies the log of all of it.
    auditor = signed_in(Role.AUDITOR)
    verified = _call("audit.verify_audit_log", client=auditor)
    assert isinstance(verified, models.Verify)
    assert verified.ok is True


def _detailed(operation: str, *args: Any, **kwargs: Any) -> Any:
    module = importlib.import_module(f"{PACKAGE}.api.{operation}")
    return module.sync_detailed(*args, **kwargs)


def _call(operation: str, *args: Any, **kwargs: Any) -> Any:
    response = _detailed(operation, *args, **kwargs)
    assert response.status_code < 300, (operation, response.status_code, response.content[:500])
    return response.parsed
