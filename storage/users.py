"""What a user chose (persona, voice replies), where they are in /voice train, and /forget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.mood import BotMood
from storage.tables import Message, ModerationEvent, OutboxEntry, User, VoiceClip
from storage.turns import get_or_create_user, split_user_key

PENDING = "pending"  # a voice clip recorded since /voice train, kept until /voice done


@dataclass(frozen=True)
class UserPrefs:
    """What the chat layer needs to know of a user before making a job, in one read."""

    persona: str | None = None
    voice_replies: bool = True
    training_since: datetime | None = None
    banned: bool = False
    muted_until: datetime | None = None
    rate_limit: str | None = None  # an admin's rate for this user, e.g. "20/hour"


class UserStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def prefs(self, user_key: str) -> UserPrefs:
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions() as session:
            user = session.scalar(select(User).where(
                User.platform == platform, User.platform_user_id == platform_user_id))
            if user is None:
                return UserPrefs()
            return UserPrefs(user.persona, user.voice_replies, user.voice_training_since,
                             user.banned, user.muted_until, user.rate_limit)

    def update(self, user_key: str, **changes) -> None:
        """Set columns of the user's row (persona, voice_replies, voice_training_since)."""
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            for name, value in changes.items():
                setattr(user, name, value)

    def start_training(self, user_key: str) -> None:
        self._drop_pending(user_key)
        self.update(user_key, voice_training_since=datetime.now(timezone.utc))

    def stop_training(self, user_key: str) -> None:
        self._drop_pending(user_key)
        self.update(user_key, voice_training_since=None)

    def add_pending_clip(self, user_key: str, wav: bytes, transcript: str) -> int:
        """Keep one checked clip until /voice done; returns how many are kept now."""
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            session.add(VoiceClip(user_id=user.id, kind=PENDING, wav=wav, transcript=transcript))
        return len(self.pending_clips(user_key))

    def pending_clips(self, user_key: str) -> list[tuple[bytes, str]]:
        with self.sessions() as session:
            rows = session.execute(
                select(VoiceClip.wav, VoiceClip.transcript).where(
                    VoiceClip.user_id.in_(_user_id(user_key)), VoiceClip.kind == PENDING)
                .order_by(VoiceClip.id)).all()
        return [(wav, transcript) for wav, transcript in rows]

    def _drop_pending(self, user_key: str) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(VoiceClip).where(VoiceClip.user_id.in_(_user_id(user_key)),
                                                    VoiceClip.kind == PENDING))

    def bot_mood(self, user_key: str) -> BotMood | None:
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions() as session:
            mood = session.scalar(select(User.bot_mood).where(
                User.platform == platform, User.platform_user_id == platform_user_id))
        return BotMood(mood["warmth"], mood["energy"]) if mood else None

    def recent_emotions(self, user_key: str, count: int) -> list[tuple[str, float]]:
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions() as session:
            rows = session.execute(
                select(Message.emotion, Message.emotion_confidence).join(User)
                .where(User.platform == platform, User.platform_user_id == platform_user_id)
                .order_by(Message.id.desc()).limit(count)
            ).all()
        return [(emotion, confidence) for emotion, confidence in reversed(rows)]

    def forget(self, user_key: str, everything: bool = False) -> None:
        """Delete the user's conversation: messages, reply voice notes not yet dropped from the
        outbox, clips of an unfinished /voice train, and Heartline's mood with them. Their
        registered voice stays. With `everything` (an admin's /admin forget), their persona
        and the flags on what they said go too; what admins did (bans, warnings, the audit)
        stays, or forgetting would lift a ban."""
        with self.sessions.begin() as session:
            user_ids = _user_id(user_key)
            session.execute(delete(Message).where(Message.user_id.in_(user_ids)))
            session.execute(delete(OutboxEntry).where(OutboxEntry.user_key == user_key))
            session.execute(delete(VoiceClip).where(VoiceClip.user_id.in_(user_ids),
                                                    VoiceClip.kind == PENDING))
            cleared = {"bot_mood": None}
            if everything:
                session.execute(delete(ModerationEvent).where(ModerationEvent.user_id.in_(user_ids)))
                cleared |= {"persona": None, "custom_persona": None, "voice_training_since": None}
            session.execute(update(User).where(User.id.in_(user_ids)).values(**cleared))


def _user_id(user_key: str):
    """The user's id, as a subquery."""
    platform, platform_user_id = split_user_key(user_key)
    return select(User.id).where(User.platform == platform, User.platform_user_id == platform_user_id)
