"""Admins moderate: mutes that end by themselves, warnings that add up, and an audit log

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, not a batch: on SQLite a batch may rebuild the table, and
    # dropping the old one, with foreign keys on, cascaded into every user's voice and history.
    op.add_column("users", sa.Column("muted_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column("users", sa.Column("warnings", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("users", sa.Column("restriction_told", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=192), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=192), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", "audit_log")
    op.drop_table("audit_log")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("restriction_told")
        batch_op.drop_column("warnings")
        batch_op.drop_column("muted_until")
