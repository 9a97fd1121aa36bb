"""Each user's daily quotas: turns, seconds of synthesized voice and voice registrations per UTC
day, as AI bots budget them.

Counted in the database, not Redis: every bot and every worker already shares it (the worker
that synthesized a reply is the one that knows its length), it is there in the embedded setup
too, and one conditional UPDATE per message is nothing beside the turn's own writes. Per-minute
rates stay in `storage.gate`, where a moving window belongs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from storage.tables import DailyUsage

KINDS = ("turns", "voice_seconds", "registrations")


@dataclass(frozen=True)
class DailyQuota:
    """Each a daily limit; 0 is none."""

    turns: int = 0
    voice_seconds: float = 0
    registrations: int = 0


def today() -> date:
    return datetime.now(timezone.utc).date()


def seconds_to_midnight() -> int:
    """When every quota starts again: the next 00:00 UTC."""
    now = datetime.now(timezone.utc)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), timezone.utc)
    return max(1, int((midnight - now).total_seconds()))


class Quotas:
    def __init__(self, sessions: sessionmaker[Session], quota: DailyQuota) -> None:
        self.sessions = sessions
        self.quota = quota

    def take(self, user_key: str, kind: str, amount: float = 1) -> bool:
        """Count `amount` more of today's `kind` if it stays within the quota; False, counting
        nothing, when it would not. One conditional UPDATE: two bots at once never both take
        the last one."""
        limit = getattr(self.quota, kind)
        column = getattr(DailyUsage, kind)
        with self.sessions.begin() as session:
            _ensure_row(session, user_key)
            query = update(DailyUsage).where(DailyUsage.user_key == user_key, DailyUsage.day == today())
            if limit > 0:
                query = query.where(column + amount <= limit)
            return session.execute(query.values({kind: column + amount})).rowcount == 1

    def give_back(self, user_key: str, kind: str, amount: float = 1) -> None:
        """Undo a take whose job could not be queued after all."""
        column = getattr(DailyUsage, kind)
        with self.sessions.begin() as session:
            session.execute(update(DailyUsage).where(DailyUsage.user_key == user_key, DailyUsage.day == today())
                            .values({kind: column - amount}))

    def add(self, user_key: str, kind: str, amount: float) -> None:
        """Count what was used already (a reply's voice seconds), whatever the quota."""
        with self.sessions.begin() as session:
            _ensure_row(session, user_key)
            column = getattr(DailyUsage, kind)
            session.execute(update(DailyUsage).where(DailyUsage.user_key == user_key, DailyUsage.day == today())
                            .values({kind: column + amount}))

    def voice_left(self, user_key: str) -> bool:
        """Whether today's replies may still be spoken."""
        if self.quota.voice_seconds <= 0:
            return True
        return self.used(user_key)["voice_seconds"] < self.quota.voice_seconds

    def tell_voice_ran_out(self, user_key: str) -> bool:
        """True only the first time asked today: the user hears once that answers come in writing."""
        with self.sessions.begin() as session:
            return session.execute(update(DailyUsage).where(
                DailyUsage.user_key == user_key, DailyUsage.day == today(),
                DailyUsage.voice_told.is_(False)).values(voice_told=True)).rowcount == 1

    def used(self, user_key: str) -> dict[str, float]:
        with self.sessions() as session:
            return used_today(session, user_key)


def used_today(session: Session, user_key: str) -> dict[str, float]:
    """The user's counts today, for the chat and for admins."""
    row = session.scalar(select(DailyUsage).where(DailyUsage.user_key == user_key, DailyUsage.day == today()))
    return {kind: (getattr(row, kind) if row else 0) for kind in KINDS}


def _ensure_row(session: Session, user_key: str) -> None:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(DailyUsage).values(user_key=user_key, day=today())
                    .on_conflict_do_nothing(index_elements=["user_key", "day"]))
