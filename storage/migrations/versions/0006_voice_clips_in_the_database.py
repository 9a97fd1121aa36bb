"""A user's voice clips live in the database, not as files a bot and its workers must share

Revision ID: 0006
Revises: 0005
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voice_clips",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("wav", sa.LargeBinary(), nullable=False),
        sa.Column("transcript", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_voice_clips_user_id", "voice_clips", ["user_id"])
    # Registered voices keep their clips: the files are read by the absolute paths stored for
    # them (on the host that wrote them) and deleted once they are in the database.
    connection = op.get_bind()
    clips = sa.table("voice_clips", sa.column("user_id"), sa.column("kind"), sa.column("wav"),
                     sa.column("transcript"), sa.column("created_at"))
    rows = connection.execute(sa.text(
        "SELECT user_id, clip_paths, transcripts, created_at FROM voice_profiles")).all()
    moved = []
    for user_id, paths, transcripts, created_at in rows:
        paths = _json(paths)
        transcripts = _json(transcripts)
        for path, transcript in zip(paths, transcripts):
            if Path(path).is_file():
                connection.execute(clips.insert().values(
                    user_id=user_id, kind="profile", wav=Path(path).read_bytes(),
                    transcript=transcript, created_at=created_at))
                moved.append(Path(path))
    with op.batch_alter_table("voice_profiles") as batch_op:
        batch_op.drop_column("clip_paths")
        batch_op.drop_column("transcripts")
    for path in moved:
        path.unlink(missing_ok=True)


def downgrade() -> None:
    with op.batch_alter_table("voice_profiles") as batch_op:
        batch_op.add_column(sa.Column("clip_paths", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("transcripts", sa.JSON(), nullable=True))
    op.drop_index("ix_voice_clips_user_id", table_name="voice_clips")
    op.drop_table("voice_clips")


def _json(value):
    import json

    return json.loads(value) if isinstance(value, str) else (value or [])
