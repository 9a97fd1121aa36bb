"""The SQL schema. Alembic migrations in `storage/migrations` create and evolve it."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Integer,
    LargeBinary,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """A moment, always read back aware and in UTC: SQLite keeps no zone and hands back naive
    values, which every comparison with now() would then have to mend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class User(Base):
    """One person on one platform (a Telegram user and a Discord user are two rows)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("platform", "platform_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    platform_user_id: Mapped[str] = mapped_column(String(128))
    persona: Mapped[str | None] = mapped_column(String(32))
    # With persona "custom": the role the user described in their own words.
    custom_persona: Mapped[str | None] = mapped_column(Text)
    # Heartline's own mood with this user: {"warmth", "energy", "at"}; /forget clears it.
    bot_mood: Mapped[dict | None] = mapped_column(JSON)
    voice_replies: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Set while the user is recording clips after /voice train.
    voice_training_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    # Moderation: a mute ends by itself; warnings add up to a mute (settings.warn_limit).
    muted_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    warnings: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A banned or muted user is told once per ban or mute, then not answered at all.
    restriction_told: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # An admin's own rate for this user ("20/hour"), in place of max_messages_per_minute.
    rate_limit: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    messages: Mapped[list[Message]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Message(Base):
    """A turn: what the user sent, what Heartline read in it, and what it answered."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "platform_message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128), default="")
    platform_message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    text: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[str | None] = mapped_column(Text)
    has_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    has_image: Mapped[bool] = mapped_column(Boolean, default=False)
    response: Mapped[str] = mapped_column(Text, default="")
    emotion: Mapped[str] = mapped_column(String(32), default="neutral")
    emotion_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    emotion_analysis: Mapped[dict] = mapped_column(JSON, default=dict)
    safety: Mapped[dict] = mapped_column(JSON, default=dict)
    details: Mapped[dict] = mapped_column(JSON, default=dict)

    user: Mapped[User] = relationship(back_populates="messages")


class VoiceProfile(Base):
    """A user's registered voice: their own clips, checked, with consent recorded."""

    __tablename__ = "voice_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    model_name: Mapped[str] = mapped_column(String(128))
    speaker_embedding: Mapped[list | None] = mapped_column(JSON)
    # What the offline converter fitted from the clips (a few kB); None for neural engines.
    conversion: Mapped[dict | None] = mapped_column(JSON)
    consented_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class VoiceClip(Base):
    """One clip the user recorded for /voice train, as checked WAV bytes: "pending" until
    /voice done, then part of their "profile". In the database, so that the bot (which takes
    the clips) and the workers (which learn from them) need no shared disk."""

    __tablename__ = "voice_clips"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    wav: Mapped[bytes] = mapped_column(LargeBinary)
    transcript: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ModerationEvent(Base):
    """Something an admin should look at, e.g. a flagged message."""

    __tablename__ = "moderation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class OutboxEntry(Base):
    """A finished answer waiting to be sent: written once by a worker, sent by a door.

    The voice note travels in the row itself (no shared disk); it is dropped once sent.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(128))
    user_key: Mapped[str] = mapped_column(String(192), index=True)
    reply_to: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str | None] = mapped_column(Text)
    voice: Mapped[bytes | None] = mapped_column(LargeBinary)
    voice_duration_s: Mapped[float | None] = mapped_column(Float)
    voice_waveform: Mapped[bytes | None] = mapped_column(LargeBinary)
    result: Mapped[dict | None] = mapped_column(JSON)
    problem: Mapped[str | None] = mapped_column(String(16))
    # pending -> sent, or failed after the last attempt.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A sender that claimed the row owns it until `claimed_until`; then anyone may take it.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    not_before: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("outbox_due", "platform", "status", "not_before"),)


class EmbeddedJob(Base):
    """A job of the embedded queue (`make run`, no Redis), kept until it has run: a process
    killed mid-turn runs it again when it starts, as RQ keeps its jobs in Redis."""

    __tablename__ = "embedded_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    # The pickled call (function, arguments, failure handler), as RQ stores a job's.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DailyUsage(Base):
    """What one user used on one UTC day, against the daily quotas every process shares."""

    __tablename__ = "daily_usage"
    __table_args__ = (UniqueConstraint("user_key", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_key: Mapped[str] = mapped_column(String(192))
    day: Mapped[date] = mapped_column(Date)
    turns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    voice_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    registrations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Told, once that day, that voice replies ran out and answers come in writing.
    voice_told: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class AuditEntry(Base):
    """One admin action: who did what to whom, when and why. Rows are never deleted; an entry
    about a user whose data was forgotten keeps the action and the identity, never the data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(192))  # platform:id of the admin, or "cli"
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(192), index=True)  # a user key
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict | None] = mapped_column(JSON)
