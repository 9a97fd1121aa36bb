"""What admins do to users (warn, mute, ban, unban) and the audit log every action writes.

Each action and its audit row are one transaction: there is no ban without its record. A
restriction is read by the chat layer before any job is made, so a muted or banned user costs
no worker time; they are told once per restriction, then not answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from storage.tables import AuditEntry, Message, User
from storage.turns import get_or_create_user, split_user_key


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite hands back naive UTC
        return moment.replace(tzinfo=timezone.utc)
    return moment


@dataclass(frozen=True)
class Restriction:
    kind: str  # "banned" or "muted"
    until: datetime | None  # a mute's end; None for a ban
    tell: bool  # the user has not been told of this one yet


class Moderation:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    # -- actions ---------------------------------------------------------------------------

    def ban(self, actor: str, user_key: str, reason: str | None = None) -> None:
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            user.banned, user.restriction_told = True, False
            _audit(session, actor, "ban", user_key, reason)

    def unban(self, actor: str, user_key: str, reason: str | None = None) -> None:
        """Lifts a ban and a mute alike; warnings are kept, as the user's history."""
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            user.banned, user.muted_until, user.restriction_told = False, None, False
            _audit(session, actor, "unban", user_key, reason)

    def mute(self, actor: str, user_key: str, duration: timedelta, reason: str | None = None) -> datetime:
        until = _now() + duration
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            user.muted_until, user.restriction_told = until, False
            _audit(session, actor, "mute", user_key, reason, {"until": until.isoformat()})
        return until

    def warn(self, actor: str, user_key: str, reason: str | None, limit: int,
             mute_for: timedelta) -> tuple[int, datetime | None]:
        """One more warning; the `limit`-th (and each after) mutes for `mute_for`, as
        communities' bots escalate. Returns the count and the mute's end, if one began."""
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            user.warnings = (user.warnings or 0) + 1
            _audit(session, actor, "warn", user_key, reason, {"warnings": user.warnings})
            if user.warnings < limit:
                return user.warnings, None
            until = _now() + mute_for
            user.muted_until, user.restriction_told = until, False
            _audit(session, "heartline", "mute", user_key, f"{user.warnings} warnings",
                   {"until": until.isoformat()})
            return user.warnings, until

    def record(self, actor: str, action: str, target: str | None, reason: str | None = None,
               details: dict | None = None) -> None:
        """An audit row for an action taken elsewhere (forget, a refused admin command)."""
        with self.sessions.begin() as session:
            _audit(session, actor, action, target, reason, details)

    # -- reading ---------------------------------------------------------------------------

    def restriction(self, user_key: str) -> Restriction | None:
        """The user's ban or running mute, if any; `tell` is True only the first time asked."""
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions.begin() as session:
            user = session.scalar(select(User).where(
                User.platform == platform, User.platform_user_id == platform_user_id))
            if user is None:
                return None
            until = _aware(user.muted_until)
            if not user.banned and not (until and until > _now()):
                return None
            # One conditional UPDATE: of two messages at once, only one is told.
            told = session.execute(update(User).where(User.id == user.id, User.restriction_told.is_(False))
                                   .values(restriction_told=True)).rowcount
            return Restriction("banned" if user.banned else "muted", None if user.banned else until,
                               tell=told == 1)

    def user(self, user_key: str) -> dict:
        """What an admin sees of a user: counts, last activity, warnings, restrictions."""
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions() as session:
            user = session.scalar(select(User).where(
                User.platform == platform, User.platform_user_id == platform_user_id))
            if user is None:
                return {"user": user_key, "known": False}
            messages, last = session.execute(
                select(func.count(Message.id), func.max(Message.created_at)).where(Message.user_id == user.id)).one()
            until = _aware(user.muted_until)
            return {
                "user": user_key, "known": True, "messages": messages,
                "last_active": _aware(last).isoformat() if last else None,
                "warnings": user.warnings or 0, "banned": user.banned,
                "muted_until": until.isoformat() if until and until > _now() else None,
                "since": _aware(user.created_at).isoformat(),
            }

    def audit(self, limit: int = 50, target: str | None = None) -> list[dict]:
        """The newest audit rows first."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if target:
            query = query.where(AuditEntry.target == target)
        with self.sessions() as session:
            return [{"at": _aware(row.at).isoformat(), "actor": row.actor, "action": row.action,
                     "target": row.target, "reason": row.reason, "details": row.details}
                    for row in session.scalars(query)]


def _audit(session: Session, actor: str, action: str, target: str | None, reason: str | None,
           details: dict | None = None) -> None:
    session.add(AuditEntry(at=_now(), actor=actor, action=action, target=target, reason=reason,
                           details=details))
