"""Settings from the environment; production refuses missing or default secrets."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from config import DEV_SECRETS_FILE, SECRET_NAMES, ConfigError, load_settings
from outreach import create_app

STRONG = {
    "OUTREACH_SECRET_KEY": "k" * 20 + "secret-key-material-1",
    "OUTREACH_JWT_SECRET": "j" * 20 + "jwt-signing-material-2",
    "OUTREACH_PEPPER": "p" * 20 + "pepper-hmac-material-3",
}


def _production(tmp_path: Path, **secrets: str) -> dict[str, str]:
    env = {"OUTREACH_ENV": "production", "OUTREACH_INSTANCE_PATH": str(tmp_path), **STRONG}
    env.update(secrets)
    return {key: value for key, value in env.items() if value is not None}


def test_development_needs_no_variable(tmp_path: Path) -> None:
    settings = load_settings({"OUTREACH_INSTANCE_PATH": str(tmp_path)})
    assert settings.env == "development"
    assert settings.database_url == f"sqlite:///{tmp_path / 'outreach.db'}"
    assert settings.small_cell_k == 11
    assert settings.h3_resolution == 9
    assert (settings.retention_days, settings.audit_retention_days) == (730, 365)
    assert settings.ratelimit_storage_url == "memory://"
    assert len({settings.secret_key, settings.jwt_secret, settings.pepper}) == 3
    # Generated once and reused, so tokens and ref hashes survive a restart.
    again = load_settings({"OUTREACH_INSTANCE_PATH": str(tmp_path)})
    assert again.jwt_secret == settings.jwt_secret
    assert create_app(settings).config["JWT_SECRET_KEY"] == settings.jwt_secret


def _load_development_secrets(instance: Path, start: Barrier, answers: Queue[str]) -> None:
    start.wait()
    settings = load_settings({"OUTREACH_INSTANCE_PATH": str(instance)})
    answers.put(f"{settings.secret_key} {settings.jwt_secret} {settings.pepper}")


def test_workers_starting_at_once_share_one_set_of_development_secrets(tmp_path: Path) -> None:
    # gunicorn's workers each load the app at the same moment; before the fix about one
    # start in five gave two workers different JWT keys (each refusing the other's tokens).
    forked = multiprocessing.get_context("fork")
    for start_number in range(20):
        instance = tmp_path / f"start-{start_number}"
        start, answers = forked.Barrier(8), forked.Queue()
        workers = [
            forked.Process(target=_load_development_secrets, args=(instance, start, answers))
            for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        seen = {answers.get(timeout=30) for _ in workers}
        for worker in workers:
            worker.join(timeout=30)
        on_disk = json.loads((instance / DEV_SECRETS_FILE).read_text())
        assert seen == {" ".join(on_disk[name] for name in SECRET_NAMES)}
        assert not [path.name for path in instance.iterdir() if path.name != DEV_SECRETS_FILE]


def test_a_relative_instance_path_is_taken_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"OUTREACH_INSTANCE_PATH": "instance/here"})
    assert settings.instance_path == tmp_path / "instance" / "here"
    assert create_app(settings).instance_path == str(tmp_path / "instance" / "here")


def test_variables_are_read(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "OUTREACH_INSTANCE_PATH": str(tmp_path),
            "OUTREACH_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "OUTREACH_SMALL_CELL_K": "5",
            "OUTREACH_H3_RESOLUTION": "8",
            "OUTREACH_RETENTION_DAYS": "365",
            "OUTREACH_AUDIT_RETENTION_DAYS": "1000",
            "OUTREACH_RATELIMIT_STORAGE_URL": "redis://127.0.0.1:6379/0",
            "OUTREACH_DEMO_PASSWORD": "a demo password",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert (settings.small_cell_k, settings.h3_resolution) == (5, 8)
    assert (settings.retention_days, settings.audit_retention_days) == (365, 1000)
    assert settings.ratelimit_storage_url == "redis://127.0.0.1:6379/0"
    assert settings.demo_password == "a demo password"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OUTREACH_H3_RESOLUTION", "11", "between 5 and 10"),
        ("OUTREACH_SMALL_CELL_K", "eleven", "whole number"),
        ("OUTREACH_ENV", "staging", "OUTREACH_ENV must be one of"),
        ("OUTREACH_TILE_URL", "http://tiles.example/{z}/{x}/{y}.png", "https://"),
        ("OUTREACH_TILE_URL", "https://tiles.example/tile.png", "{z}"),
        ("OUTREACH_HOTSPOT_P_VALUE", "0", "above 0"),
        ("OUTREACH_COVERAGE_TARGET_DAYS", "8", "between 1 and 7"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({"OUTREACH_INSTANCE_PATH": str(tmp_path), name: value})


def test_production_starts_with_strong_secrets(tmp_path: Path) -> None:
    settings = load_settings(_production(tmp_path))
    assert settings.env == "production"
    assert settings.jwt_secret == STRONG["OUTREACH_JWT_SECRET"]
    assert not (tmp_path / DEV_SECRETS_FILE).exists()


@pytest.mark.parametrize("missing", sorted(STRONG))
def test_production_refuses_a_missing_secret(tmp_path: Path, missing: str) -> None:
    env = _production(tmp_path)
    del env[missing]
    with pytest.raises(ConfigError, match=f"refusing to start in production: {missing} is not set"):
        load_settings(env)


@pytest.mark.parametrize("placeholder", ["changeme", "secret", "dev", "CHANGE-ME"])
def test_production_refuses_placeholders(tmp_path: Path, placeholder: str) -> None:
    with pytest.raises(ConfigError, match="OUTREACH_JWT_SECRET is a development default"):
        load_settings(_production(tmp_path, OUTREACH_JWT_SECRET=placeholder))


def test_production_refuses_the_generated_development_secret(tmp_path: Path) -> None:
    development = load_settings({"OUTREACH_INSTANCE_PATH": str(tmp_path)})
    stored = json.loads((tmp_path / DEV_SECRETS_FILE).read_text())
    assert stored["OUTREACH_PEPPER"] == development.pepper
    with pytest.raises(ConfigError, match="OUTREACH_PEPPER is a development default"):
        load_settings(_production(tmp_path, OUTREACH_PEPPER=development.pepper))


def test_production_refuses_short_and_repeated_secrets(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shorter than 32 characters"):
        load_settings(_production(tmp_path, OUTREACH_SECRET_KEY="x" * 31))
    same = STRONG["OUTREACH_PEPPER"]
    with pytest.raises(ConfigError, match="must differ"):
        load_settings(_production(tmp_path, OUTREACH_JWT_SECRET=same))


def test_flask_command_reports_the_refusal(tmp_path: Path) -> None:
    """An operator sees the reason, not a traceback, when production is misconfigured."""
    import subprocess
    import sys

    env = {"OUTREACH_ENV": "production", "OUTREACH_INSTANCE_PATH": str(tmp_path), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", "current"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert result.returncode == 1
    # One line, no traceback.
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: refusing to start in production")
    assert "OUTREACH_SECRET_KEY is not set" in result.stderr


def test_a_tile_server_is_the_only_outside_origin_the_dashboard_may_load(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "OUTREACH_INSTANCE_PATH": str(tmp_path),
            "OUTREACH_TILE_URL": "https://{s}.tile.example.org/{z}/{x}/{y}.png",
        }
    )
    app = create_app(settings)
    page = app.test_client().get("/dashboard")
    policy = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://*.tile.example.org;" in policy
    assert "connect-src 'self';" in policy
    assert b'data-tile-url="https://{s}.tile.example.org/{z}/{x}/{y}.png"' in page.data
    default = create_app(load_settings({"OUTREACH_INSTANCE_PATH": str(tmp_path)}))
    assert (
        "img-src 'self' data:;"
        in default.test_client().get("/dashboard").headers["Content-Security-Policy"]
    )


GUNICORN_WORKER_START = """
import gc, runpy, sys, weakref

from outreach import create_app  # what a worker holds once its app is loaded

hooks = runpy.run_path(sys.argv[1])
gc.disable()  # only the hook may collect from here on

class Leftover:
    pass

cycle = Leftover()
cycle.self = cycle
gone = weakref.ref(cycle)
del cycle
hooks["post_worker_init"](None)
print(gc.get_freeze_count(), gone() is None)
"""


def test_a_gunicorn_worker_freezes_what_it_loaded_after_collecting_its_garbage() -> None:
    # In a process of its own: freezing is for the rest of the process's life.
    config = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    ran = subprocess.run(
        [sys.executable, "-c", GUNICORN_WORKER_START, str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    frozen, collected = ran.stdout.split()
    assert int(frozen) > 50_000  # the app's modules, schemas and statements
    assert collected == "True"
