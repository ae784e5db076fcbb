"""rights and delegations: the service catalogue, account rights, delegations and their scope

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("theme", sa.String(length=80), nullable=False),
        sa.Column("fund", sa.String(length=10), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("held_by", sa.String(length=10), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "delegation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("centralizer_id", sa.Integer(), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["centralizer_id"], ["establishment.id"]),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_delegation_centralizer_id"), "delegation", ["centralizer_id"], unique=False)
    op.create_index(op.f("ix_delegation_establishment_id"), "delegation", ["establishment_id"], unique=False)
    op.create_table(
        "delegation_service",
        sa.Column("delegation_id", sa.Integer(), nullable=False),
        sa.Column("service_code", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["delegation_id"], ["delegation.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["service_code"], ["service.code"]),
        sa.PrimaryKeyConstraint("delegation_id", "service_code"),
    )
    op.create_table(
        "account_right",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=False),
        sa.Column("service_code", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=5), nullable=False),
        sa.Column("delegation_id", sa.Integer(), nullable=True),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.ForeignKeyConstraint(["service_code"], ["service.code"]),
        sa.ForeignKeyConstraint(["delegation_id"], ["delegation.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "establishment_id", "service_code"),
    )
    op.create_index(op.f("ix_account_right_account_id"), "account_right", ["account_id"], unique=False)
    op.create_index(op.f("ix_account_right_delegation_id"), "account_right", ["delegation_id"], unique=False)
    op.create_index(
        "ix_account_right_establishment_service", "account_right", ["establishment_id", "service_code"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_account_right_establishment_service", table_name="account_right")
    op.drop_index(op.f("ix_account_right_delegation_id"), table_name="account_right")
    op.drop_index(op.f("ix_account_right_account_id"), table_name="account_right")
    op.drop_table("account_right")
    op.drop_table("delegation_service")
    op.drop_index(op.f("ix_delegation_establishment_id"), table_name="delegation")
    op.drop_index(op.f("ix_delegation_centralizer_id"), table_name="delegation")
    op.drop_table("delegation")
    op.drop_table("service")
