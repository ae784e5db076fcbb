"""two-factor: trusted workstations, codes before an account exists, TOTP enrolment

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trusted_device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_trusted_device_account_id"), "trusted_device", ["account_id"], unique=False)
    with op.batch_alter_table("one_time_code") as batch:
        batch.alter_column("account_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("target", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_one_time_code_target"), ["target"], unique=False)
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_column("totp_enabled_at")
    with op.batch_alter_table("one_time_code") as batch:
        batch.drop_index(batch.f("ix_one_time_code_target"))
        batch.drop_column("target")
        batch.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index(op.f("ix_trusted_device_account_id"), table_name="trusted_device")
    op.drop_table("trusted_device")
