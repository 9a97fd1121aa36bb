"""The embedded queue's journal: each job is a row from submission until it has run.

RQ keeps its jobs in Redis; the embedded queue of `make run` kept them in memory, so a bot
killed mid-turn lost that turn after Telegram had been told it was handled. Now a job is
written before the door confirms the message, and a process that starts runs what the last
one left unfinished.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from storage.tables import EmbeddedJob


class JobJournal:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def add(self, job_id: str, payload: bytes) -> bool:
        """Keep the job; False if it is already kept (a message submitted again)."""
        try:
            with self.sessions.begin() as session:
                session.add(EmbeddedJob(job_id=job_id, payload=payload))
        except IntegrityError:
            return False
        return True

    def done(self, job_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(EmbeddedJob).where(EmbeddedJob.job_id == job_id))

    def unfinished(self) -> list[tuple[str, bytes]]:
        """(job id, payload) of every job not done, oldest first."""
        with self.sessions() as session:
            return [tuple(row) for row in session.execute(
                select(EmbeddedJob.job_id, EmbeddedJob.payload).order_by(EmbeddedJob.id))]
