"""The SQL side of a turn: who the user is, what they said, what Heartline answered."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from core.mood import BotMood
from core.stages import MoodStep, UserState
from core.turn import Memory, Turn
from storage.db import sqlite_file_lock
from storage.tables import Message, ModerationEvent, User

log = logging.getLogger(__name__)

RECENT_EMOTIONS = 6  # how many of the user's last messages make their trend
# How many of the user's last exchanges go into the prompt word for word; older ones come back
# through semantic memory. Each costs the local model ~0.2 s of reading on two CPU cores.
HISTORY_TURNS = 3


def split_user_key(user_key: str) -> tuple[str, str]:
    platform, _, platform_user_id = user_key.partition(":")
    return platform, platform_user_id


def get_or_create_user(session: Session, platform: str, platform_user_id: str,
                       for_update: bool = False) -> User:
    """The user's row, made if new. A new user's first two messages may be handled at once (by
    two workers, or the bot and a worker): the insert yields to a row the other made first,
    where a plain INSERT failed one of them on the unique constraint. `for_update` locks the row
    until the transaction ends (PostgreSQL; SQLite has no row locks)."""
    query = select(User).where(User.platform == platform, User.platform_user_id == platform_user_id)
    if for_update:
        query = query.with_for_update()
    user = session.scalar(query)
    if user is None:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(insert(User).values(platform=platform, platform_user_id=platform_user_id)
                        .on_conflict_do_nothing(index_elements=["platform", "platform_user_id"]))
        user = session.scalar(query)
    return user


def _stored_mood(user: User) -> tuple[BotMood | None, float]:
    """Heartline's mood with the user, and how many hours ago it was set."""
    if not user.bot_mood:
        return None, 0.0
    at = datetime.fromisoformat(user.bot_mood["at"])
    return (BotMood(user.bot_mood["warmth"], user.bot_mood["energy"]),
            (datetime.now(timezone.utc) - at).total_seconds() / 3600)


class SqlTurnStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def user_state(self, turn: Turn) -> UserState:
        with self.sessions() as session:
            user = session.scalar(select(User).where(
                User.platform == turn.platform, User.platform_user_id == turn.user_id))
            if user is None:
                return UserState()
            recent = session.scalars(
                select(Message.emotion).where(Message.user_id == user.id)
                .order_by(Message.id.desc()).limit(RECENT_EMOTIONS)).all()
            mood, hours = _stored_mood(user)
            return UserState(user.persona, user.custom_persona, mood, hours, list(reversed(recent)))

    def save_turn(self, turn: Turn, result: dict, mood_step: MoodStep | None = None) -> int:
        user_input, emotions = result["user_input"], result["emotion_analysis"]
        if turn.message_id:
            stored = self._stored_id(turn)
            if stored is not None:  # a redelivery that got past the queue's dedup
                log.info("%s message already stored as %d", turn.platform, stored)
                return stored
        # The mood is read and written under a lock: two workers answering one user at once
        # would otherwise each move the mood they read, and one move would be lost.
        with sqlite_file_lock(self.sessions.kw["bind"], "mood"), self.sessions.begin() as session:
            user = get_or_create_user(session, turn.platform, turn.user_id, for_update=True)
            if mood_step is not None:
                after = mood_step(*_stored_mood(user))
                user.bot_mood = {"warmth": after.warmth, "energy": after.energy,
                                 "at": datetime.now(timezone.utc).isoformat()}
            message = Message(
                user=user,
                platform=turn.platform,
                chat_id=turn.chat_id,
                platform_message_id=turn.message_id,
                text=user_input["text"],
                transcript=user_input["transcript"],
                has_audio=user_input["has_audio"],
                has_image=user_input["has_image"],
                response=result["response"],
                emotion=emotions["fused_emotion"]["primary_emotion"],
                emotion_confidence=emotions["fused_emotion"]["confidence"],
                emotion_analysis=emotions,
                safety=result["safety"],
                details=result["metadata"],
            )
            session.add(message)
            session.flush()
            safety = result["safety"]
            # What moderators review: harmful words from the user, and replies no check passed.
            if safety["input_flags"]:
                session.add(ModerationEvent(user_id=user.id, message_id=message.id, kind="flagged_input",
                                            reasons=safety["input_flags"]))
            if safety["action"] == "blocked_reply":
                session.add(ModerationEvent(user_id=user.id, message_id=message.id, kind="blocked_reply",
                                            reasons=["no reply passed the safety check"]))
            return message.id

    def _stored_id(self, turn: Turn) -> int | None:
        with self.sessions() as session:
            return session.scalar(select(Message.id).where(
                Message.platform == turn.platform, Message.chat_id == turn.chat_id,
                Message.platform_message_id == turn.message_id))


class SqlHistory:
    """Memory as the user's recent turns from SQL (semantic recall comes with the memory store)."""

    name = "sql-recent-turns"

    def __init__(self, sessions: sessionmaker[Session], turns: int = HISTORY_TURNS) -> None:
        self.sessions = sessions
        self.turns = turns

    def remember(self, user_key: str, text: str) -> None:
        """Turns are already in SQL."""

    def forget(self, user_key: str) -> None:
        """Turns go with the user's messages (UserStore.forget)."""

    def recall(self, user_key: str, text: str) -> list[Memory]:
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions() as session:
            rows = session.scalars(
                select(Message)
                .join(User)
                .where(User.platform == platform, User.platform_user_id == platform_user_id)
                .order_by(Message.id.desc())
                .limit(self.turns)
            ).all()
        memories: list[Memory] = []
        for row in reversed(rows):
            when = row.created_at.isoformat(timespec="seconds")
            if row.text:
                memories.append(Memory(row.text, "user", when))
            memories.append(Memory(row.response, "assistant", when))
        return memories

