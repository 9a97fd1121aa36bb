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

from storage.db import sqlite_file_lock
from storage.quotas import used_today
from storage.tables import AuditEntry, Message, ModerationEvent, User
from storage.tables import VoiceProfile as VoiceProfileRow
from storage.turns import get_or_create_user, split_user_key
from storage.users import UserPrefs


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReviewError(ValueError):
    """A flag that cannot be reviewed: there is none with that id, or it was reviewed already."""


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
        # Counted in the database, one warning at a time (SQLite has no row locks): two warnings
        # at once both count, where a read-then-write lost one of them.
        with sqlite_file_lock(self.sessions.kw["bind"], "moderation"), self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            session.execute(update(User).where(User.id == user.id).values(warnings=User.warnings + 1))
            session.refresh(user, ["warnings"])
            _audit(session, actor, "warn", user_key, reason, {"warnings": user.warnings})
            if user.warnings < limit:
                return user.warnings, None
            until = _now() + mute_for
            user.muted_until, user.restriction_told = until, False
            _audit(session, "heartline", "mute", user_key, f"{user.warnings} warnings",
                   {"until": until.isoformat()})
            return user.warnings, until

    def review(self, actor: str, flag_id: int, verdict: str, limit: int,
               mute_for: timedelta) -> dict:
        """Close an open flag. "approve" agrees with it: the user gets a warning (which may
        mute them, as any warning may); "dismiss" calls it a false alarm and holds nothing
        against them."""
        with self.sessions.begin() as session:
            flag = session.get(ModerationEvent, flag_id, with_for_update=True)
            if flag is None:
                raise ReviewError(f"there is no flag {flag_id}")
            if flag.status != "open":
                raise ReviewError(f"flag {flag_id} was already {flag.status}")
            user = session.get(User, flag.user_id)
            flag.status = "approved" if verdict == "approve" else "dismissed"
            flag.resolved_at = _now()
            target = f"{user.platform}:{user.platform_user_id}"
            _audit(session, actor, verdict, target, None, {"flag": flag_id, "kind": flag.kind})
        done = {"flag": flag_id, "status": flag.status, "user": target}
        if verdict == "approve":
            warnings, until = self.warn(actor, target, f"flag {flag_id}", limit, mute_for)
            done |= {"warnings": warnings, "muted_until": until.isoformat() if until else None}
        return done

    def set_limit(self, actor: str, user_key: str, rate: str | None) -> None:
        """The user's own rate ("20/hour"), or None for the default one."""
        with self.sessions.begin() as session:
            user = get_or_create_user(session, *split_user_key(user_key))
            user.rate_limit = rate
            _audit(session, actor, "limits", user_key, None, {"rate": rate or "default"})

    def record(self, actor: str, action: str, target: str | None, reason: str | None = None,
               details: dict | None = None) -> None:
        """An audit row for an action taken elsewhere (forget, a refused admin command)."""
        with self.sessions.begin() as session:
            _audit(session, actor, action, target, reason, details)

    # -- reading ---------------------------------------------------------------------------

    def restriction(self, user_key: str, prefs: UserPrefs) -> Restriction | None:
        """The user's ban or running mute, if `prefs` (just read) show one; `tell` is True only
        the first time asked. Only a restricted user's message costs a write."""
        until = prefs.muted_until
        if not prefs.banned and not (until and until > _now()):
            return None
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions.begin() as session:
            # One conditional UPDATE: of two messages at once, only one is told.
            told = session.execute(update(User).where(
                User.platform == platform, User.platform_user_id == platform_user_id,
                User.restriction_told.is_(False)).values(restriction_told=True)).rowcount
        return Restriction("banned" if prefs.banned else "muted", None if prefs.banned else until,
                           tell=told == 1)

    def flagged(self, limit: int = 20, everything: bool = False) -> list[dict]:
        """The newest flags (open ones, or all): flagged messages and replies that no check
        passed. What was said is not shown: scores and reasons are enough to act on, and a
        companion's conversations are private."""
        query = (select(ModerationEvent, User, Message.safety).select_from(ModerationEvent)
                 .join(User, User.id == ModerationEvent.user_id)
                 .outerjoin(Message, Message.id == ModerationEvent.message_id)
                 .order_by(ModerationEvent.id.desc()).limit(limit))
        if not everything:
            query = query.where(ModerationEvent.status == "open")
        with self.sessions() as session:
            rows = session.execute(query).all()
        return [{"id": flag.id, "user": f"{user.platform}:{user.platform_user_id}",
                 "at": flag.created_at.isoformat(), "kind": flag.kind, "reasons": flag.reasons,
                 "scores": _flag_scores(flag.kind, safety), "status": flag.status}
                for flag, user, safety in rows]

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
            flags = session.scalar(select(func.count(ModerationEvent.id)).where(
                ModerationEvent.user_id == user.id, ModerationEvent.status == "open"))
            voice = session.scalar(select(VoiceProfileRow.model_name).where(VoiceProfileRow.user_id == user.id))
            usage = used_today(session, user_key)
            until = user.muted_until
            return {
                "user": user_key, "known": True, "messages": messages,
                "last_active": last.isoformat() if last else None,
                "warnings": user.warnings or 0, "open_flags": flags, "banned": user.banned,
                "muted_until": until.isoformat() if until and until > _now() else None,
                "voice_registered": voice is not None, "rate_limit": user.rate_limit,
                "today": {kind: round(value, 1) for kind, value in usage.items()},
                "since": user.created_at.isoformat(),
            }

    def users(self, limit: int = 50) -> list[dict]:
        """The users an admin may want first: restricted, warned or flagged ones, then the most
        recently active; each with its counts."""
        last = (select(Message.user_id, func.max(Message.created_at).label("at"),
                       func.count(Message.id).label("messages")).group_by(Message.user_id).subquery())
        flags = (select(ModerationEvent.user_id, func.count(ModerationEvent.id).label("open"))
                 .where(ModerationEvent.status == "open").group_by(ModerationEvent.user_id).subquery())
        now = _now()
        watched = (User.banned | (User.muted_until > now) | (User.warnings > 0)
                   | (func.coalesce(flags.c.open, 0) > 0))
        query = (select(User, last.c.at, last.c.messages, flags.c.open)
                 .outerjoin(last, last.c.user_id == User.id).outerjoin(flags, flags.c.user_id == User.id)
                 .order_by(watched.desc(), func.coalesce(last.c.at, User.created_at).desc()).limit(limit))
        with self.sessions() as session:
            rows = session.execute(query).all()
        return [{"user": f"{user.platform}:{user.platform_user_id}", "messages": messages or 0,
                 "last_active": at.isoformat() if at else None, "warnings": user.warnings or 0,
                 "open_flags": open_flags or 0, "banned": user.banned,
                 "muted_until": user.muted_until.isoformat() if user.muted_until and user.muted_until > now else None,
                 "rate_limit": user.rate_limit}
                for user, at, messages, open_flags in rows]

    def audit(self, limit: int = 50, target: str | None = None) -> list[dict]:
        """The newest audit rows first."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if target:
            query = query.where(AuditEntry.target == target)
        with self.sessions() as session:
            return [{"at": row.at.isoformat(), "actor": row.actor, "action": row.action,
                     "target": row.target, "reason": row.reason, "details": row.details}
                    for row in session.scalars(query)]


def _flag_scores(kind: str, safety: dict | None) -> dict[str, float]:
    """The scores behind a flag: the user's words', or the blocked reply's (gone with /forget)."""
    if not safety:
        return {}
    scores = safety.get("toxicity_scores" if kind == "blocked_reply" else "input_scores") or {}
    return {name: value for name, value in scores.items() if value >= 0.05}  # the ones that matter


def _audit(session: Session, actor: str, action: str, target: str | None, reason: str | None,
           details: dict | None = None) -> None:
    session.add(AuditEntry(at=_now(), actor=actor, action=action, target=target, reason=reason,
                           details=details))
