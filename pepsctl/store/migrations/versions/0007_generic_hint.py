"""generic hint: each account keeps the generic-account heuristic's verdict on its names and e-mail

``account.generic_hint`` is NULL until the application computes it (pepsctl.domain.generic); a
trigger resets it to NULL whenever the last name, the first name or the e-mail changes, so a kept
verdict always matches the row, whatever wrote it. A partial index holds the rows not known yet.
The readiness audit reads the verdict instead of running the heuristic over every account.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SQLITE = [
    """
    CREATE TRIGGER account_generic_hint_reset AFTER UPDATE OF last_name, first_name, email ON account
    WHEN NEW.generic_hint IS NOT NULL AND (
      NEW.last_name IS NOT OLD.last_name OR NEW.first_name IS NOT OLD.first_name OR NEW.email IS NOT OLD.email
    )
    BEGIN UPDATE account SET generic_hint = NULL WHERE id = NEW.id; END
    """,
]
POSTGRESQL = [
    """
    CREATE FUNCTION pepsctl_account_generic_hint_reset() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      NEW.generic_hint := NULL;
      RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER account_generic_hint_reset BEFORE UPDATE OF last_name, first_name, email ON account
    FOR EACH ROW WHEN (
      NEW.last_name IS DISTINCT FROM OLD.last_name OR NEW.first_name IS DISTINCT FROM OLD.first_name
      OR NEW.email IS DISTINCT FROM OLD.email
    )
    EXECUTE FUNCTION pepsctl_account_generic_hint_reset()
    """,
]


def upgrade() -> None:
    op.add_column("account", sa.Column("generic_hint", sa.Boolean(), nullable=True))
    op.create_index(
        "ix_account_generic_hint_unknown",
        "account",
        ["id"],
        unique=False,
        sqlite_where=sa.text("generic_hint IS NULL"),
        postgresql_where=sa.text("generic_hint IS NULL"),
    )
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL if dialect == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS account_generic_hint_reset ON account")
        op.execute("DROP FUNCTION IF EXISTS pepsctl_account_generic_hint_reset()")
    else:
        op.execute("DROP TRIGGER IF EXISTS account_generic_hint_reset")
    op.drop_index("ix_account_generic_hint_unknown", table_name="account")
    with op.batch_alter_table("account") as batch:
        batch.drop_column("generic_hint")
