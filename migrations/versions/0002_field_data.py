"""Shifts, encounters, their versions, the kit catalogue, structures and rollups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:12:13.046306
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kits",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_kits")),
    )
    op.create_table(
        "rollup_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("shift_kind", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "cell",
            "shift_kind",
            "metric",
            name=op.f("pk_rollup_counts"),
        ),
    )
    op.create_table(
        "rollup_people",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("shift_kind", sa.String(length=16), nullable=False),
        sa.Column("ref_hash", sa.String(length=64), nullable=False),
        sa.Column("encounters", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "organisation_id",
            "sector",
            "cell",
            "shift_kind",
            "ref_hash",
            name=op.f("pk_rollup_people"),
        ),
    )
    op.create_table(
        "structures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("destination", sa.String(length=32), nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("opening_hours", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_structures")),
        sa.UniqueConstraint("code", name=op.f("uq_structures_code")),
    )
    with op.batch_alter_table("structures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_structures_destination"), ["destination"], unique=False
        )

    op.create_table(
        "shifts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("planned_sectors", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_shifts_created_by_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_shifts_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shifts")),
    )
    with op.batch_alter_table("shifts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_shifts_organisation_id"), ["organisation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_shifts_started_at"), ["started_at"], unique=False)

    op.create_table(
        "encounters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("shift_id", sa.Uuid(), nullable=True),
        sa.Column("shift_kind", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_day", sa.Date(), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("setting", sa.String(length=16), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("age_band", sa.String(length=8), nullable=True),
        sa.Column("gender", sa.String(length=8), nullable=True),
        sa.Column("first_contact", sa.Boolean(), nullable=True),
        sa.Column("ref_hash", sa.String(length=64), nullable=True),
        sa.Column("kits", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("referrals", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_encounters_created_by_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_encounters_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["shift_id"],
            ["shifts.id"],
            name=op.f("fk_encounters_shift_id_shifts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounters")),
    )
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_encounters_created_by"), ["created_by"], unique=False)
        batch_op.create_index(
            "ix_encounters_organisation_day", ["organisation_id", "local_day"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_encounters_shift_id"), ["shift_id"], unique=False)

    op.create_table(
        "shift_sectors",
        sa.Column("shift_id", sa.Uuid(), nullable=False),
        sa.Column("sector", sa.String(length=32), nullable=False),
        sa.Column("encounters", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shift_id"],
            ["shifts.id"],
            name=op.f("fk_shift_sectors_shift_id_shifts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("shift_id", "sector", name=op.f("pk_shift_sectors")),
    )
    op.create_table(
        "encounter_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("encounter_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_by", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["encounter_id"],
            ["encounters.id"],
            name=op.f("fk_encounter_versions_encounter_id_encounters"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by"],
            ["users.id"],
            name=op.f("fk_encounter_versions_replaced_by_users"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_encounter_versions")),
    )
    with op.batch_alter_table("encounter_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_encounter_versions_encounter_id"), ["encounter_id"], unique=False
        )

    # The harm-reduction kits of docs/design.md. Frozen here (not read from data/) so the
    # migration means the same thing forever; an admin adds codes through the API.
    kits = sa.table(
        "kits",
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("active", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        kits,
        [
            {"code": code, "label": label, "active": True, "created_at": now}
            for code, label in (
                ("kit_base", "Kit base (inhalation de crack)"),
                ("pipe", "Pipe"),
                ("embout", "Embout"),
                ("filtre", "Filtre"),
                ("seringue", "Seringue"),
                ("kit_injection", "Kit d'injection"),
                ("roule_ta_paille", "Roule ta paille"),
                ("feuille_alu", "Feuille d'aluminium"),
                ("preservatif", "Préservatif"),
                ("naloxone", "Naloxone"),
            )
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("encounter_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_encounter_versions_encounter_id"))

    op.drop_table("encounter_versions")
    op.drop_table("shift_sectors")
    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_encounters_shift_id"))
        batch_op.drop_index("ix_encounters_organisation_day")
        batch_op.drop_index(batch_op.f("ix_encounters_created_by"))

    op.drop_table("encounters")
    with op.batch_alter_table("shifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shifts_started_at"))
        batch_op.drop_index(batch_op.f("ix_shifts_organisation_id"))

    op.drop_table("shifts")
    with op.batch_alter_table("structures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_structures_destination"))

    op.drop_table("structures")
    op.drop_table("rollup_people")
    op.drop_table("rollup_counts")
    op.drop_table("kits")
