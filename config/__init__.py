"""Settings read from ``OUTREACH_*`` environment variables.

``load_settings()`` is the single reader of the environment. It returns a frozen
``Settings`` whose ``flask_config()`` is what ``create_app`` loads. Production refuses
to start when a secret is missing, too short, a known placeholder, or the generated
development value, because a guessable JWT key or pepper would let anyone mint tokens
or re-identify people behind hashed refs.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

Environment = Literal["development", "testing", "production"]

ENVIRONMENTS: tuple[Environment, ...] = ("development", "testing", "production")
SECRET_NAMES = ("OUTREACH_SECRET_KEY", "OUTREACH_JWT_SECRET", "OUTREACH_PEPPER")
MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "dev", "development", "test", "testing"}
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE_PATH = PROJECT_ROOT / "instance"
DEV_SECRETS_FILE = "dev-secrets.json"


class ConfigError(RuntimeError):
    """The environment does not describe a configuration the service may run with."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service, with the development defaults of docs/design.md."""

    env: Environment = "development"
    database_url: str = f"sqlite:///{DEFAULT_INSTANCE_PATH / 'outreach.db'}"
    # The tables' owner, for migrations and the retention purge (PostgreSQL): the
    # service's own role may then only insert and read the audit tables.
    admin_database_url: str | None = None
    secret_key: str = ""
    jwt_secret: str = ""
    pepper: str = ""
    small_cell_k: int = 11
    # The cell key method's perturbation table, a file of data/ptable/ (its maximum
    # deviation and variance are in its first line).
    perturbation_table: str = "cellkey_D2_V1.csv"
    h3_resolution: int = 9
    retention_days: int = 730
    audit_retention_days: int = 365
    # Days a week each sector should see a shift; coverage lists the weeks below it.
    coverage_target_days: int = 7
    # A hexagon is a hotspot when its last week is this improbable under its baseline.
    hotspot_p_value: float = 0.01
    # Hexagons (features) of published maps each worker keeps until the counters change:
    # enough for the maps each worker publishes ahead (stats.warm_periods) at national volume.
    map_cache_features: int = 80_000
    # Hexagon span rows each worker keeps until their span changes (28 bytes a row).
    map_cache_span_rows: int = 1_000_000
    # Sector-counter and person-day rows each worker keeps for filtered stats, each
    # until their organisation's day changes (about 20 and 8 bytes a row).
    stats_cache_day_rows: int = 8_000_000
    ratelimit_storage_url: str = "memory://"
    # A base-map tile URL for the dashboard ({z}/{x}/{y}); none by default: no outside request.
    tile_url: str | None = None
    # Who answers for the processing and where the data lives, as the register states them.
    controller: str = "Non déclaré : renseigner OUTREACH_CONTROLLER"
    hosting: str = "Non déclaré : renseigner OUTREACH_HOSTING (hébergeur certifié HDS)"
    demo_password: str | None = None
    access_token_minutes: int = 15
    refresh_token_days: int = 14
    login_max_failures: int = 5
    login_client_max_failures: int = 20
    login_lockout_minutes: int = 15
    # Requests per client address to the login and refresh routes, all usernames together.
    login_rate: str = "30 per minute"
    max_body_bytes: int = 2 * 1024 * 1024
    trusted_proxies: int = 0
    # Argon2id cost. The defaults follow RFC 9106's second recommended option; tests
    # lower them because hashing dominates a suite that creates many accounts.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 1
    instance_path: Path = DEFAULT_INSTANCE_PATH

    @property
    def owner_database_url(self) -> str:
        """Where migrations and the retention purge connect: the tables' owner."""
        return self.admin_database_url or self.database_url

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (tests use it)."""
        return replace(self, **changes)

    def flask_config(self) -> dict[str, Any]:
        """The Flask configuration mapping built from these settings."""
        return {
            "OUTREACH_SETTINGS": self,
            "ENV_NAME": self.env,
            "TESTING": self.env == "testing",
            "SECRET_KEY": self.secret_key,
            "MAX_CONTENT_LENGTH": self.max_body_bytes,
            "JWT_SECRET_KEY": self.jwt_secret,
            "JWT_ALGORITHM": "HS256",
            "JWT_DECODE_ALGORITHMS": ["HS256"],
            "JWT_TOKEN_LOCATION": ["headers"],
            "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=self.access_token_minutes),
            "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=self.refresh_token_days),
            "RATELIMIT_STORAGE_URI": self.ratelimit_storage_url,
            "RATELIMIT_HEADERS_ENABLED": False,
            "OUTREACH_LOGIN_RATE": self.login_rate,
            "API_TITLE": "Outreach",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api",
            "OPENAPI_JSON_PATH": "openapi.json",
        }


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not low < value <= high:
        raise ConfigError(f"{name} must be above {low} and at most {high}, got {value}")
    return value


def _tile_url(raw: str | None) -> str | None:
    if not raw:
        return None
    if not raw.startswith("https://") or not all(part in raw for part in ("{z}", "{x}", "{y}")):
        raise ConfigError(
            "OUTREACH_TILE_URL must be an https:// URL with {z}, {x} and {y}, got " + repr(raw)
        )
    return raw


def _development_secrets(instance_path: Path) -> dict[str, str]:
    """Secrets generated once per checkout so tokens and ref hashes survive restarts.

    Every gunicorn worker loads the app at once: were each to write its own secrets,
    they would sign tokens the others refuse. So the file appears whole and only once
    (written aside, then hard-linked into place, which fails if another got there
    first), and every process uses what is on disk.
    """
    path = instance_path / DEV_SECRETS_FILE
    incomplete = path.exists()
    stored = _read_development_secrets(path)
    if stored is not None:
        return stored
    instance_path.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{DEV_SECRETS_FILE}.{os.getpid()}.{secrets.token_hex(8)}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({name: secrets.token_urlsafe(48) for name in SECRET_NAMES}, file, indent=2)
    try:
        if incomplete:
            os.replace(aside, path)
        else:
            os.link(aside, path)
    except FileExistsError:
        pass  # another process's secrets won the race: use them
    finally:
        aside.unlink(missing_ok=True)
    written = _read_development_secrets(path)
    if written is None:
        raise ConfigError(f"{path} holds no usable development secrets")
    return written


def _read_development_secrets(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    stored: dict[str, str] = json.loads(path.read_text())
    return stored if all(stored.get(name) for name in SECRET_NAMES) else None


def _check_production_secrets(values: Mapping[str, str], instance_path: Path) -> None:
    dev_file = instance_path / DEV_SECRETS_FILE
    dev_values = set(json.loads(dev_file.read_text()).values()) if dev_file.exists() else set()
    problems = []
    for name in SECRET_NAMES:
        value = values.get(name, "")
        if not value:
            problems.append(f"{name} is not set")
        elif value.strip().lower() in PLACEHOLDER_SECRETS or value in dev_values:
            problems.append(f"{name} is a development default")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
    if len({values.get(name) for name in SECRET_NAMES}) < len(SECRET_NAMES):
        problems.append("the three secrets must differ from one another")
    if problems:
        raise ConfigError(
            "refusing to start in production: "
            + "; ".join(problems)
            + ". Generate each with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from an environment mapping (``os.environ`` by default)."""
    env = os.environ if env is None else env
    name = env.get("OUTREACH_ENV", "development").strip() or "development"
    if name not in ENVIRONMENTS:
        raise ConfigError(f"OUTREACH_ENV must be one of {', '.join(ENVIRONMENTS)}, got {name!r}")
    environment: Environment = name
    # Absolute: Flask refuses a relative instance path, with a traceback.
    instance_path = Path(env.get("OUTREACH_INSTANCE_PATH") or DEFAULT_INSTANCE_PATH).resolve()

    secret_values = {key: env.get(key, "") for key in SECRET_NAMES}
    if environment == "production":
        _check_production_secrets(secret_values, instance_path)
    elif not all(secret_values.values()):
        generated = _development_secrets(instance_path)
        secret_values = {key: secret_values[key] or generated[key] for key in SECRET_NAMES}

    defaults = Settings()
    return Settings(
        env=environment,
        database_url=env.get("OUTREACH_DATABASE_URL")
        or f"sqlite:///{instance_path / 'outreach.db'}",
        admin_database_url=env.get("OUTREACH_ADMIN_DATABASE_URL") or None,
        secret_key=secret_values["OUTREACH_SECRET_KEY"],
        jwt_secret=secret_values["OUTREACH_JWT_SECRET"],
        pepper=secret_values["OUTREACH_PEPPER"],
        small_cell_k=_int(env, "OUTREACH_SMALL_CELL_K", defaults.small_cell_k, 2, 1000),
        perturbation_table=env.get("OUTREACH_PERTURBATION_TABLE", defaults.perturbation_table),
        h3_resolution=_int(env, "OUTREACH_H3_RESOLUTION", defaults.h3_resolution, 5, 10),
        retention_days=_int(env, "OUTREACH_RETENTION_DAYS", defaults.retention_days, 1, 36500),
        audit_retention_days=_int(
            env, "OUTREACH_AUDIT_RETENTION_DAYS", defaults.audit_retention_days, 1, 36500
        ),
        coverage_target_days=_int(
            env, "OUTREACH_COVERAGE_TARGET_DAYS", defaults.coverage_target_days, 1, 7
        ),
        hotspot_p_value=_float(env, "OUTREACH_HOTSPOT_P_VALUE", defaults.hotspot_p_value, 0, 0.5),
        map_cache_features=_int(
            env, "OUTREACH_MAP_CACHE_FEATURES", defaults.map_cache_features, 0, 10_000_000
        ),
        map_cache_span_rows=_int(
            env, "OUTREACH_MAP_CACHE_SPAN_ROWS", defaults.map_cache_span_rows, 0, 100_000_000
        ),
        stats_cache_day_rows=_int(
            env, "OUTREACH_STATS_CACHE_DAY_ROWS", defaults.stats_cache_day_rows, 0, 100_000_000
        ),
        tile_url=_tile_url(env.get("OUTREACH_TILE_URL")),
        controller=env.get("OUTREACH_CONTROLLER") or defaults.controller,
        hosting=env.get("OUTREACH_HOSTING") or defaults.hosting,
        ratelimit_storage_url=env.get("OUTREACH_RATELIMIT_STORAGE_URL")
        or defaults.ratelimit_storage_url,
        demo_password=env.get("OUTREACH_DEMO_PASSWORD") or None,
        access_token_minutes=_int(
            env, "OUTREACH_ACCESS_TOKEN_MINUTES", defaults.access_token_minutes, 1, 60
        ),
        refresh_token_days=_int(
            env, "OUTREACH_REFRESH_TOKEN_DAYS", defaults.refresh_token_days, 1, 90
        ),
        login_max_failures=_int(
            env, "OUTREACH_LOGIN_MAX_FAILURES", defaults.login_max_failures, 1, 1000
        ),
        login_client_max_failures=_int(
            env, "OUTREACH_LOGIN_CLIENT_MAX_FAILURES", defaults.login_client_max_failures, 1, 10000
        ),
        login_lockout_minutes=_int(
            env, "OUTREACH_LOGIN_LOCKOUT_MINUTES", defaults.login_lockout_minutes, 1, 1440
        ),
        login_rate=env.get("OUTREACH_LOGIN_RATE") or defaults.login_rate,
        trusted_proxies=_int(env, "OUTREACH_TRUSTED_PROXIES", defaults.trusted_proxies, 0, 5),
        instance_path=instance_path,
    )
