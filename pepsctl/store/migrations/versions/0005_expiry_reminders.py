"""expiry reminders: the monthly e-mail to administrators, sent once per establishment and month

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "expiry_reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("establishment_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("accounts", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["establishment_id"], ["establishment.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("establishment_id", "month"),
    )
    op.create_index(op.f("ix_expiry_reminder_establishment_id"), "expiry_reminder", ["establishment_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_expiry_reminder_establishment_id"), table_name="expiry_reminder")
    op.drop_table("expiry_reminder")
