"""The small interfaces each pipeline stage is reached through.

Every backend has a `name` that goes into the result's `metadata.models`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.mood import BotMood
from core.turn import (
    EmotionScore,
    FaceEmotion,
    Memory,
    PcmAudio,
    ReplyRequest,
    Transcript,
    Turn,
    VoiceProfile,
    VoiceStyle,
)


class AudioCodec(Protocol):
    name: str

    def decode(self, data: bytes, mime_type: str | None, max_seconds: float) -> PcmAudio:
        """Any voice-note or audio-file format to 16 kHz mono PCM.

        Raises InputError if the data is unreadable or longer than `max_seconds`.
        """

    def encode_voice_note(self, audio: PcmAudio) -> bytes:
        """Mono PCM to an OGG/Opus voice note."""

    def encode_wav(self, audio: PcmAudio) -> bytes:
        """Mono PCM to a 16-bit WAV file at the audio's own rate."""

    def waveform(self, audio: PcmAudio, points: int = 256) -> bytes:
        """Loudness over time, one byte (0-255) per point: what Discord draws on a voice message."""


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio: PcmAudio) -> Transcript: ...


class TextEmotionReader(Protocol):
    name: str

    def read(self, text: str) -> list[EmotionScore]:
        """Top fine labels, most confident first."""


class LanguageIdentifier(Protocol):
    name: str

    def identify(self, text: str) -> str | None:
        """The language of `text` as an ISO 639-1 code, or None when it cannot tell."""


class SentenceEncoder(Protocol):
    name: str

    def encode(self, texts: list[str]) -> Sequence[Sequence[float]]:
        """Unit-length embeddings, one row per text."""


class FaceEmotionReader(Protocol):
    name: str

    def read(self, image: bytes) -> FaceEmotion | None:
        """The largest face's emotion, None when no face is found; InputError if not an image."""


class VoiceEmotionReader(Protocol):
    name: str

    def read(self, audio: PcmAudio) -> EmotionScore: ...


class MemoryStore(Protocol):
    name: str

    def recall(self, user_key: str, text: str) -> list[Memory]:
        """What this user said before that the reply should know about, oldest first."""

    def remember(self, user_key: str, text: str) -> None:
        """Keep what the user just said, if it is worth remembering."""

    def forget(self, user_key: str) -> None: ...


class ReplyGenerator(Protocol):
    name: str

    def generate(self, request: ReplyRequest) -> str: ...


class ToxicityChecker(Protocol):
    name: str

    def scores(self, text: str) -> dict[str, float]:
        """Named scores in [0, 1]; higher is more harmful."""


class SpeechSynthesizer(Protocol):
    name: str

    def synthesize(self, text: str, style: VoiceStyle, voice: VoiceProfile | None = None) -> PcmAudio:
        """Mono PCM of `text`, in the user's registered voice when `voice` is given."""

    def engine_for(self, voice: VoiceProfile | None) -> str:
        """What will speak for this voice profile (or none): it goes into the result."""


class VoiceProfiles(Protocol):
    def load(self, user_key: str) -> VoiceProfile | None: ...


@dataclass(frozen=True)
class UserState:
    """What the store knows about the user before their turn."""

    persona: str | None = None  # a persona name, or "custom"
    custom_persona: str | None = None  # the user's own description, already checked
    mood: BotMood | None = None  # Heartline's mood with them after the last exchange
    hours_since_mood: float = 0.0
    recent_emotions: list[str] = field(default_factory=list)  # fused, oldest first


# (the mood stored now, hours since it was set) -> the mood after this turn
MoodStep = Callable[[BotMood | None, float], BotMood]


class TurnStore(Protocol):
    def user_state(self, turn: Turn) -> UserState: ...

    def save_turn(self, turn: Turn, result: dict, mood_step: MoodStep | None = None) -> int:
        """Persist the turn and its result; returns the message id. `mood_step` is applied to
        the mood as stored at that moment, atomically: another turn of the same user may have
        moved it since this one read it, and neither move may be lost."""
