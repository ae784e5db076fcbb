"""audit trail append-only: triggers refuse UPDATE and DELETE (and TRUNCATE) on audit_event

The only way past them is the retention purge (``pepsctl store purge``), which opens the gate for
its own transaction: on SQLite by a ``history_purge`` row in store_meta, on PostgreSQL by the
transaction-local setting ``pepsctl.history_purge``. On PostgreSQL the application role should
also lack the UPDATE/DELETE privileges (docs/deployment.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SQLITE = [
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END
    """,
    """
    CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    WHEN (SELECT value FROM store_meta WHERE key = 'history_purge') IS NULL
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END
    """,
]
POSTGRESQL = [
    """
    CREATE FUNCTION pepsctl_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP IN ('DELETE', 'TRUNCATE') AND current_setting('pepsctl.history_purge', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN
          RETURN OLD;  -- let this row go
        END IF;
        RETURN NULL;  -- statement-level TRUNCATE: the value is ignored
      END IF;
      RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'insufficient_privilege';
    END $$
    """,
    """
    CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION pepsctl_audit_append_only()
    """,
    """
    CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION pepsctl_audit_append_only()
    """,
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRESQL if dialect == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS pepsctl_audit_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
