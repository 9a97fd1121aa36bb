"""Registered voices: the user's own clips (`voice_clips` rows) and one `voice_profiles` row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.turn import VoiceProfile
from storage.tables import User, VoiceClip
from storage.tables import VoiceProfile as VoiceProfileRow
from storage.turns import get_or_create_user, split_user_key

PROFILE = "profile"


@dataclass(frozen=True)
class VoiceStatus:
    registered: bool
    clips: int = 0
    model_name: str = ""
    created_at: datetime | None = None
    consented_at: datetime | None = None


class VoiceProfileStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def save(self, user_key: str, clips: list[bytes], transcripts: list[str], model_name: str,
             embedding: list[float] | None, conversion: dict | None, consented_at: datetime) -> None:
        """Replace the user's profile with these WAV clips and what was fitted from them."""
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions.begin() as session:
            user = get_or_create_user(session, platform, platform_user_id)
            row = session.scalar(select(VoiceProfileRow).where(VoiceProfileRow.user_id == user.id))
            if row is None:
                row = VoiceProfileRow(user_id=user.id)
                session.add(row)
            row.model_name = model_name
            row.speaker_embedding = embedding
            row.conversion = conversion
            row.consented_at, row.created_at = consented_at, datetime.now(consented_at.tzinfo)
            session.execute(delete(VoiceClip).where(VoiceClip.user_id == user.id,
                                                    VoiceClip.kind == PROFILE))
            session.add_all(VoiceClip(user_id=user.id, kind=PROFILE, wav=wav, transcript=text)
                            for wav, text in zip(clips, transcripts))

    def load(self, user_key: str) -> VoiceProfile | None:
        with self.sessions() as session:
            row = self._row(session, user_key)
            if row is None:
                return None
            clips = session.execute(
                select(VoiceClip.wav, VoiceClip.transcript)
                .where(VoiceClip.user_id == row.user_id, VoiceClip.kind == PROFILE)
                .order_by(VoiceClip.id)).all()
            return VoiceProfile(
                user_key=user_key,
                clips=tuple(wav for wav, _ in clips),
                transcripts=tuple(text for _, text in clips),
                embedding=tuple(row.speaker_embedding) if row.speaker_embedding else None,
                conversion=row.conversion,
            )

    def status(self, user_key: str) -> VoiceStatus:
        with self.sessions() as session:
            row = self._row(session, user_key)
            if row is None:
                return VoiceStatus(registered=False)
            clips = session.scalar(select(func.count()).select_from(VoiceClip).where(
                VoiceClip.user_id == row.user_id, VoiceClip.kind == PROFILE))
            return VoiceStatus(True, clips, row.model_name, row.created_at, row.consented_at)

    def delete(self, user_key: str) -> bool:
        """Forget the voice: the profile and every clip. True if there was one."""
        with self.sessions.begin() as session:
            row = self._row(session, user_key)
            if row is None:
                return False
            session.execute(delete(VoiceClip).where(VoiceClip.user_id == row.user_id,
                                                    VoiceClip.kind == PROFILE))
            session.delete(row)
            return True

    @staticmethod
    def _row(session: Session, user_key: str) -> VoiceProfileRow | None:
        platform, platform_user_id = split_user_key(user_key)
        return session.scalar(
            select(VoiceProfileRow).join(User, User.id == VoiceProfileRow.user_id)
            .where(User.platform == platform, User.platform_user_id == platform_user_id)
        )
