"""``flask`` commands for operators: migrations, accounts, demo data, audit, retention."""

from __future__ import annotations

import secrets
import sys
from typing import Any

import click
from alembic import command as alembic_command
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from config import Settings
from outreach import migrate
from outreach.api.access import security
from outreach.api.access import settings as app_settings
from outreach.api.errors import COLLISIONS
from outreach.extensions import db
from outreach.models import OrgKind, Role
from outreach.models.engine import make_engine
from outreach.services import (
    accounts,
    audit,
    audit_log,
    demo,
    directory,
    retention,
    rollups,
    writes,
)
from outreach.services.context import OPERATOR
from outreach.services.errors import ServiceError
from outreach.services.passwords import password_problems

DEMO_PASSWORD_FILE = "demo-password"  # noqa: S105 (a file name)


class OperatorCommand(click.Command):
    """A command whose database failure is one line and exit code 1, not a traceback.

    The driver's first line says what went wrong (refused connection, unknown host,
    missing table); the SQL it may quote on later lines stays out.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as error:
            cause = error.orig if error.orig is not None else error
            first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            raise click.ClickException(
                f"database error ({type(cause).__name__}): {first_line}"
                " — check OUTREACH_DATABASE_URL, that the database is up, and flask db upgrade"
            ) from None


class OperatorGroup(AppGroup):
    """``AppGroup`` whose commands are ``OperatorCommand``s."""

    command_class = OperatorCommand


def _fail(error: ServiceError) -> None:
    details = "".join(
        f"\n  {field}: {'; '.join(map(str, msgs))}" for field, msgs in (error.errors or {}).items()
    )
    raise click.ClickException(f"{error.message}{details}")


# Migrations ---------------------------------------------------------------------

db_cli = OperatorGroup(
    "db",
    help="Database migrations (Alembic), as OUTREACH_ADMIN_DATABASE_URL (the owner) when set,"
    " else OUTREACH_DATABASE_URL.",
)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head); grant the service role its
    privileges; then rebuild the rollups if a migration applied adds to what they keep."""
    settings = app_settings()
    rebuild = migrate.upgrade(settings.owner_database_url, revision, pepper=settings.pepper)
    click.echo(f"Database upgraded to {revision}.")
    role = migrate.grant_service_role(settings.owner_database_url, settings.database_url)
    if role:
        click.echo(f"Role {role}: read and write, but only INSERT and SELECT on the audit log.")
    if rebuild:
        click.echo("A migration applied adds to what every counter keeps: rebuilding the rollups.")
        _rebuild_rollups()


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (default: one step)."""
    try:
        migrate.downgrade(app_settings().owner_database_url, revision)
    except migrate.DowngradeRefused as refused:
        raise click.ClickException(str(refused)) from refused


@db_cli.command("current")
def db_current() -> None:
    """Show the revision the database is at."""
    alembic_command.current(migrate.alembic_config(app_settings().owner_database_url), verbose=True)


@db_cli.command("heads")
def db_heads() -> None:
    """Show the newest revision(s) of the migration scripts."""
    alembic_command.heads(migrate.alembic_config(app_settings().database_url), verbose=True)


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option("--autogenerate", is_flag=True, help="Diff the models against the database.")
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration script (review it before committing)."""
    alembic_command.revision(
        migrate.alembic_config(app_settings().database_url),
        message=message,
        autogenerate=autogenerate,
    )


# Accounts -----------------------------------------------------------------------


@click.command("create-org", cls=OperatorCommand)
@click.option("--slug", required=True, help="Short stable name, e.g. gaia-paris.")
@click.option("--name", required=True, help="Display name.")
@click.option("--kind", required=True, type=click.Choice([k.value for k in OrgKind]))
@with_appcontext
def create_org(slug: str, name: str, kind: str) -> None:
    """Create an organisation."""
    try:
        organisation = accounts.create_organisation(
            db.session, OPERATOR, slug=slug, name=name, kind=OrgKind(kind)
        )
    except ServiceError as error:
        _fail(error)
        return
    click.echo(
        f"Created organisation {organisation.slug} ({organisation.kind.value}) {organisation.id}"
    )


@click.command("create-user", cls=OperatorCommand)
@click.option("--username", required=True)
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--org", "org_slug", required=True, help="Slug of the user's organisation.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of a prompt.",
)
@with_appcontext
def create_user(username: str, role: str, org_slug: str, password_stdin: bool) -> None:
    """Create a user. The password is prompted for (or read from stdin), never an argument."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    session = db.session
    organisation = accounts.find_organisation(session, org_slug)
    if organisation is None:
        raise click.ClickException(
            f"No organisation {org_slug!r}; create it with flask create-org."
        )
    try:
        user = accounts.create_user(
            session,
            OPERATOR,
            security().passwords,
            accounts.NewUser(
                username=username,
                password=password,
                role=Role(role),
                organisation_id=organisation.id,
            ),
        )
    except ServiceError as error:
        _fail(error)
        return
    click.echo(f"Created user {user.username} ({user.role.value}) in {organisation.slug}")


# Demo data ----------------------------------------------------------------------


def demo_password(settings: Settings) -> str:
    """OUTREACH_DEMO_PASSWORD, or in development one generated once and kept in instance/."""
    if settings.demo_password:
        return settings.demo_password
    if settings.env != "development":
        raise click.ClickException("Set OUTREACH_DEMO_PASSWORD (12 characters or more).")
    path = settings.instance_path / DEMO_PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(password + "\n")
    return password


@click.command("seed-demo", cls=OperatorCommand)
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(0, 3650),
    help="Days of synthetic activity, ending the day before yesterday.",
)
@with_appcontext
def seed_demo(days: int) -> None:
    """Demo organisations, one user per role, structures and activity (safe to run again)."""
    settings = app_settings()
    if settings.env == "production":
        raise click.ClickException(
            "seed-demo creates accounts with a shared password: not in production."
        )
    password = demo_password(settings)
    if problems := password_problems(password):
        raise click.ClickException("OUTREACH_DEMO_PASSWORD: " + " ".join(problems))
    steps = len(demo.DEMO_ORGANISATIONS) + len(demo.DEMO_USERS)
    with click.progressbar(length=steps, label="Seeding demo accounts") as bar:
        summary = demo.seed_demo_accounts(
            db.session, security().passwords, password, progress=lambda _step: bar.update(1)
        )
    click.echo(
        f"Organisations created: {summary.organisations_created}, "
        f"users created: {summary.users_created}."
    )
    structures = directory.seed_structures(db.session, OPERATOR)
    click.echo(f"Structures added to the directory: {structures}.")
    days = min(days, settings.retention_days - 1)
    with click.progressbar(length=2 * days, label=f"Syncing {days} days of demo activity") as bar:
        created = demo.seed_demo_activity(
            db.session, settings, days, progress=lambda _step: bar.update(1)
        )
    click.echo(f"Encounters created: {created}.")
    click.echo("Demo accounts: " + ", ".join(name for name, _, _ in demo.DEMO_USERS))
    if settings.env == "development" and not settings.demo_password:
        click.echo(f"Demo password (development only): {password}")


# Structure directory ---------------------------------------------------------------

directory_cli = AppGroup("directory", help="The directory of structures people are referred to.")


@directory_cli.command("load")
def directory_load() -> None:
    """Add the shipped structures (data/structures.json) that are missing; in any environment.

    ``seed-demo`` also loads them but is refused in production (it creates accounts
    with a shared password); a deployment needs the directory all the same.
    """
    added = directory.seed_structures(db.session, OPERATOR)
    click.echo(f"Structures added to the directory: {added}.")


# Audit --------------------------------------------------------------------------

audit_cli = OperatorGroup("audit", help="Verify the audit chain and print its head.")


def _parse_head(value: str | None) -> audit.ChainHead | None:
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise click.BadParameter(
            "expected SEQ:HASH as printed by flask audit head", param_hint="--head"
        )
    return audit.ChainHead(seq=int(seq), hash=digest)


@audit_cli.command("verify")
@click.option(
    "--head", "expected", help="A head printed earlier (SEQ:HASH) that must still be in the chain."
)
def audit_verify(expected: str | None) -> None:
    """Recompute the chain; exit 1 naming the first broken event (the check is audited)."""
    session = db.session
    expected_head = _parse_head(expected)
    with session.begin():
        events = audit.read_head(session).seq - audit.latest_checkpoint(session).seq
    with click.progressbar(length=events, label="Verifying the audit chain") as bar:
        result = audit_log.verify_chain(session, OPERATOR, expected_head, progress=bar.update)
    for purge in result.purges:
        click.echo(
            f"purge attested at event {purge.attested_by_seq} ({purge.attested_at}): "
            f"{purge.events} events before {purge.audit_before} "
            f"({purge.audit_retention_days}-day retention), through event {purge.through_seq}"
        )
    if result.head_note:
        click.echo(f"head: {result.head_note}")
    if result.ok:
        click.echo(
            f"ok: {result.checked} events verified; head {result.head_seq}:{result.head_hash}"
        )
        return
    click.echo(
        f"BROKEN at event {result.first_broken_seq}: {result.reason} "
        f"({result.checked} events verified before it)",
        err=True,
    )
    sys.exit(1)


@audit_cli.command("head")
def audit_head() -> None:
    """Print SEQ:HASH of the newest event, to keep outside the system."""
    session = db.session
    with session.begin():
        head = audit.read_head(session)
    click.echo(f"{head.seq}:{head.hash}")


# Rollups -------------------------------------------------------------------------

rollups_cli = OperatorGroup("rollups", help="The aggregates statistics are answered from.")


@rollups_cli.command("rebuild")
def rollups_rebuild() -> None:
    """Recompute every aggregate from the raw encounters; report what differed.

    Safe while phones sync: writers wait for it (``rollups.lock_out_writers``).
    """
    _rebuild_rollups()


def _rebuild_rollups() -> None:
    session = db.session
    try:
        with session.begin():
            # Writers wait from here to the commit: the snapshot is then the state rebuilt.
            rollups.lock_out_writers(session)
            before = rollups.snapshot(session)
            length = rollups.live_encounters(session)
            with click.progressbar(length=length, label="Rebuilding rollups") as bar:
                summary = rollups.rebuild(session, progress=bar.update)
            after = rollups.snapshot(session)
            differing = sum(
                len(set(before[name].items()) ^ set(after[name].items())) for name in before
            )
            writes.record(
                session,
                OPERATOR,
                "rollups.rebuild",
                summary.change,
                params={"differing": differing},
                records=summary.encounters,
            )
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) not in COLLISIONS:
            raise
        raise click.ClickException(
            "The rebuild collided with another transaction (a deadlock) and was rolled back;"
            " nothing changed. Run it again."
        ) from error
    click.echo(
        f"Rebuilt from {summary.encounters} encounters: {summary.counters} counters; "
        f"{differing} differed from the incremental rollups."
    )


# Retention ----------------------------------------------------------------------

retention_cli = OperatorGroup("retention", help="Delete what is past its retention period.")


@retention_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(100, 100_000),
    default=retention.PURGE_BATCH,
    show_default=True,
    help="Rows per transaction; an interrupted purge keeps its finished batches.",
)
def retention_purge(dry_run: bool, batch_size: int) -> None:
    """Delete raw encounters and audit events past their retention (aggregates stay)."""
    settings = app_settings()
    limits = retention.cutoffs(settings)
    click.echo(
        f"Raw encounters before {limits.encounters_before} ({settings.retention_days} days), "
        f"audit events before {limits.audit_before:%Y-%m-%d %H:%M} UTC "
        f"({settings.audit_retention_days} days)."
    )
    # Encounters and audit events go in batches, each a step of the bar; the
    # person-days go in one statement. As the owner: the service's role may not delete
    # audit events (docs/audit.md).
    engine = make_engine(settings.owner_database_url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            counted = retention.due(session, limits)
            length = 0 if dry_run else counted.encounters + counted.audit_events
            with click.progressbar(length=length, label="Purging") as bar:
                result = retention.purge(
                    session,
                    OPERATOR,
                    settings,
                    dry_run=dry_run,
                    batch=batch_size,
                    progress=lambda what, count: bar.update(0 if what == "person-days" else count),
                    limits=limits,
                )
    finally:
        engine.dispose()
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(
        f"{verb} {result.encounters:,} encounters, {result.person_days:,} person-days and "
        f"{result.audit_events:,} audit events; the chain now starts after event "
        f"{result.checkpoint_seq}."
    )


COMMANDS = [
    db_cli,
    create_org,
    create_user,
    seed_demo,
    directory_cli,
    audit_cli,
    rollups_cli,
    retention_cli,
]
