"""The outbox: finished answers on their way to a platform, in the database both sides share.

Workers `put` one row per platform message (a second put of the same key is a no-op, which is
what makes a re-run job answer once). Senders `claim` due rows for their platform: a claim is a
lease, so a sender that dies mid-send leaves the row to be taken again when the lease runs out,
and two senders never hold the same row at once (the claim is one conditional UPDATE).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.delivery import Delivery, Outgoing, VoiceNote
from storage.tables import OutboxEntry

log = logging.getLogger(__name__)

LEASE_S = 60  # longer than any one send with its platform's own retries


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Outbox:
    def __init__(self, sessions: sessionmaker[Session], owner: str | None = None) -> None:
        self.sessions = sessions
        self.owner = owner or uuid.uuid4().hex[:16]

    def put(self, delivery: Delivery) -> bool:
        """Store the answer; False if this message already has one (it is never written twice)."""
        reply, voice = delivery.reply, delivery.reply.voice
        try:
            with self.sessions.begin() as session:
                session.add(OutboxEntry(
                    key=delivery.key, platform=delivery.platform, chat_id=delivery.chat_id,
                    user_key=delivery.user_key, reply_to=delivery.reply_to, text=reply.text,
                    voice=voice.ogg if voice else None,
                    voice_duration_s=voice.duration_s if voice else None,
                    voice_waveform=voice.waveform if voice else None,
                    result=reply.result, problem=reply.problem, status="pending", attempts=0,
                    not_before=_now(), created_at=_now(),
                ))
        except IntegrityError:
            log.info("message %s already has an answer in the outbox", delivery.key)
            return False
        return True

    def has(self, key: str) -> bool:
        with self.sessions() as session:
            return session.scalar(select(OutboxEntry.id).where(OutboxEntry.key == key)) is not None

    def claim(self, platform: str, limit: int = 10) -> list[Delivery]:
        """Due rows for `platform` that no live sender holds, now leased to this one."""
        now = _now()
        free = or_(OutboxEntry.claimed_until.is_(None), OutboxEntry.claimed_until < now)
        with self.sessions() as session:
            candidates = session.scalars(
                select(OutboxEntry.id)
                .where(OutboxEntry.platform == platform, OutboxEntry.status == "pending",
                       OutboxEntry.not_before <= now, free)
                .order_by(OutboxEntry.id).limit(limit)).all()
        claimed = []
        for row_id in candidates:
            with self.sessions.begin() as session:
                taken = session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id == row_id, OutboxEntry.status == "pending", free)
                    .values(claimed_by=self.owner, claimed_until=now + timedelta(seconds=LEASE_S)))
                if taken.rowcount == 1:
                    claimed.append(row_id)
        if not claimed:
            return []
        with self.sessions() as session:
            rows = session.scalars(select(OutboxEntry).where(OutboxEntry.id.in_(claimed))
                                   .order_by(OutboxEntry.id)).all()
            return [_delivery(row) for row in rows]

    def get(self, key: str) -> Delivery | None:
        with self.sessions() as session:
            row = session.scalar(select(OutboxEntry).where(OutboxEntry.key == key))
            return _delivery(row) if row is not None else None

    def voice(self, key: str) -> bytes | None:
        with self.sessions() as session:
            return session.scalar(select(OutboxEntry.voice).where(OutboxEntry.key == key))

    def sent(self, key: str, keep_voice: bool = False) -> None:
        """Delivered. The voice note's bytes go unless a door still serves them (the web chat)."""
        values = {"status": "sent", "sent_at": _now(), "claimed_by": None, "claimed_until": None}
        if not keep_voice:
            values["voice"] = None
        self._set(key, **values)

    def retry_later(self, key: str, delay_s: float) -> None:
        with self.sessions.begin() as session:
            session.execute(update(OutboxEntry).where(OutboxEntry.key == key).values(
                attempts=OutboxEntry.attempts + 1, claimed_by=None, claimed_until=None,
                not_before=_now() + timedelta(seconds=delay_s)))

    def failed(self, key: str) -> None:
        self._set(key, status="failed", voice=None, claimed_by=None, claimed_until=None)

    def pending(self, platform: str | None = None) -> int:
        query = select(func.count()).select_from(OutboxEntry).where(OutboxEntry.status == "pending")
        if platform:
            query = query.where(OutboxEntry.platform == platform)
        with self.sessions() as session:
            return session.scalar(query) or 0

    def purge(self, older_than_s: float) -> int:
        """Drop finished rows older than that; a pending row stays until it is sent or fails."""
        cutoff = _now() - timedelta(seconds=older_than_s)
        with self.sessions.begin() as session:
            return session.execute(delete(OutboxEntry).where(
                OutboxEntry.status != "pending", OutboxEntry.created_at < cutoff)).rowcount

    def _set(self, key: str, **values) -> None:
        with self.sessions.begin() as session:
            session.execute(update(OutboxEntry).where(OutboxEntry.key == key).values(**values))


def _delivery(row: OutboxEntry) -> Delivery:
    voice = (VoiceNote(row.voice, row.voice_duration_s or 0.0, row.voice_waveform or b"")
             if row.voice is not None else None)
    reply = Outgoing(text=row.text, voice=voice, result=row.result, problem=row.problem)
    return Delivery(row.key, row.platform, row.chat_id, row.user_key, reply, row.reply_to,
                    row.attempts)
