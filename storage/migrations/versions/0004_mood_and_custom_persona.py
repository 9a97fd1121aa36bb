"""Heartline keeps its own mood with each user, and users can describe a persona of their own

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("custom_persona", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("bot_mood", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("bot_mood")
        batch_op.drop_column("custom_persona")
