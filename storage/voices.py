"""Registered voices: the user's own clips as WAV files and one `voice_profiles` row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.turn import VoiceProfile
from storage.blobs import AudioBlobs
from storage.tables import User
from storage.tables import VoiceProfile as VoiceProfileRow
from storage.turns import get_or_create_user, split_user_key
from storage.users import VOICE_CLIPS


@dataclass(frozen=True)
class VoiceStatus:
    registered: bool
    clips: int = 0
    model_name: str = ""
    created_at: datetime | None = None
    consented_at: datetime | None = None


class VoiceProfileStore:
    def __init__(self, sessions: sessionmaker[Session], blobs: AudioBlobs) -> None:
        self.sessions = sessions
        self.blobs = blobs

    def save(self, user_key: str, clips: list[bytes], transcripts: list[str], model_name: str,
             embedding: list[float] | None, conversion: dict | None, consented_at: datetime) -> None:
        """Replace the user's profile with these WAV clips and what was fitted from them."""
        old = self._row_paths(user_key)
        paths = [str(self.blobs.save(user_key, wav, ".wav", folder=VOICE_CLIPS)) for wav in clips]
        platform, platform_user_id = split_user_key(user_key)
        with self.sessions.begin() as session:
            user = get_or_create_user(session, platform, platform_user_id)
            row = session.scalar(select(VoiceProfileRow).where(VoiceProfileRow.user_id == user.id))
            if row is None:
                row = VoiceProfileRow(user_id=user.id)
                session.add(row)
            row.model_name, row.clip_paths, row.transcripts = model_name, paths, transcripts
            row.speaker_embedding = embedding
            row.conversion = conversion
            row.consented_at, row.created_at = consented_at, datetime.now(consented_at.tzinfo)
        self.blobs.delete_files(old)

    def load(self, user_key: str) -> VoiceProfile | None:
        with self.sessions() as session:
            row = self._row(session, user_key)
            if row is None:
                return None
            return VoiceProfile(
                user_key=user_key,
                clips=tuple(row.clip_paths),
                transcripts=tuple(row.transcripts),
                embedding=tuple(row.speaker_embedding) if row.speaker_embedding else None,
                conversion=row.conversion,
            )

    def status(self, user_key: str) -> VoiceStatus:
        with self.sessions() as session:
            row = self._row(session, user_key)
            if row is None:
                return VoiceStatus(registered=False)
            return VoiceStatus(True, len(row.clip_paths), row.model_name, row.created_at,
                               row.consented_at)

    def delete(self, user_key: str) -> bool:
        """Forget the voice: the row and every clip file. True if there was one."""
        paths = self._row_paths(user_key)
        with self.sessions.begin() as session:
            row = self._row(session, user_key)
            if row is not None:
                session.delete(row)
        self.blobs.delete_files(paths)
        self.blobs.delete_folder(user_key, VOICE_CLIPS)
        return paths is not None

    def _row_paths(self, user_key: str) -> list[str] | None:
        with self.sessions() as session:
            row = self._row(session, user_key)
            return list(row.clip_paths) if row else None

    @staticmethod
    def _row(session: Session, user_key: str) -> VoiceProfileRow | None:
        platform, platform_user_id = split_user_key(user_key)
        return session.scalar(
            select(VoiceProfileRow).join(User, User.id == VoiceProfileRow.user_id)
            .where(User.platform == platform, User.platform_user_id == platform_user_id)
        )
