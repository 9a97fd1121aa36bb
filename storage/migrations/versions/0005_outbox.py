"""Finished answers wait in an outbox, voice notes included, instead of as files on a shared disk

Revision ID: 0005
Revises: 0004
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=64), nullable=False, unique=True),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("user_key", sa.String(length=192), nullable=False),
        sa.Column("reply_to", sa.String(length=128), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("voice", sa.LargeBinary(), nullable=True),
        sa.Column("voice_duration_s", sa.Float(), nullable=True),
        sa.Column("voice_waveform", sa.LargeBinary(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("problem", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("outbox_due", "outbox", ["platform", "status", "not_before"])
    op.create_index("ix_outbox_user_key", "outbox", ["user_key"])
    # Reply voice notes were files named in this column; once it is gone nothing (/forget
    # included) could find them again, so they go with it.
    stale = [Path(path) for (path,) in op.get_bind().execute(sa.text(
        "SELECT reply_audio_path FROM messages WHERE reply_audio_path IS NOT NULL"))]
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("reply_audio_path")
    for path in stale:
        path.unlink(missing_ok=True)


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("reply_audio_path", sa.String(length=512), nullable=True))
    op.drop_index("ix_outbox_user_key", table_name="outbox")
    op.drop_index("outbox_due", table_name="outbox")
    op.drop_table("outbox")
