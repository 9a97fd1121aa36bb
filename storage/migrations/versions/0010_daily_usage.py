"""Daily quotas: each user's turns, voice seconds and voice registrations per UTC day

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_usage",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_key", sa.String(length=192), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("turns", sa.Integer(), server_default="0", nullable=False),
        sa.Column("voice_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("registrations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("voice_told", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.UniqueConstraint("user_key", "day"),
    )


def downgrade() -> None:
    op.drop_table("daily_usage")
