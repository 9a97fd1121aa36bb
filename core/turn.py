"""What comes in (a Turn) and what goes out (a TurnResult), as plain dataclasses."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# Format characters that carry meaning in writing: ZWNJ (Persian, Hindi) and ZWJ (emoji).
_KEPT_FORMAT = frozenset("\u200c\u200d")


def clean_text(text: str | None) -> str:
    """What the user wrote, fit to read, store and speak: NFC, without control characters (a NUL
    is refused by PostgreSQL), stray surrogates (invalid UTF-8), or invisible format characters
    such as bidi overrides that make a text display other than it reads."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n"))
    return "".join(
        char for char in text
        if char in "\n\t" or char in _KEPT_FORMAT
        or unicodedata.category(char) not in ("Cc", "Cs", "Cf")
    ).strip()


@dataclass(frozen=True)
class Turn:
    """One message from one user on one platform, before any processing.

    Content fields are kept out of repr() so a logged Turn never leaks what the user said.
    """

    user_id: str
    platform: str = "cli"
    chat_id: str = ""
    text: str | None = field(default=None, repr=False)
    audio: bytes | None = field(default=None, repr=False)
    audio_mime: str | None = None
    image: bytes | None = field(default=None, repr=False)
    persona: str | None = None
    message_id: str | None = None
    in_group: bool = False  # in a group chat the answer quotes the message it answers
    received_at: float | None = None  # unix time the door took it; a stale job says so
    want_voice: bool = True
    reply_format: str = "ogg"  # "ogg" (a voice note) or "wav"

    @property
    def user_key(self) -> str:
        """One identity per person per platform, whatever chat they write from."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True)
class PcmAudio:
    """Mono float32 samples in [-1, 1]."""

    samples: np.ndarray = field(repr=False)
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def slice(self, start_s: float, end_s: float) -> PcmAudio:
        """The stretch from `start_s` to `end_s` (a view: no samples are copied)."""
        return PcmAudio(self.samples[int(start_s * self.sample_rate): int(end_s * self.sample_rate)],
                        self.sample_rate)


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None = None


@dataclass(frozen=True)
class EmotionScore:
    emotion: str
    confidence: float


@dataclass(frozen=True)
class FaceEmotion(EmotionScore):
    """The largest face's reading; `faces` says how many were in the picture."""

    faces: int = 1


@dataclass(frozen=True)
class FusedEmotion:
    primary_emotion: str
    confidence: float
    source: str


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ReplyContext:
    """What a reply is judged against, and what a rule-based reply may reflect back."""

    user_text: str = ""
    language: str | None = None  # of the user's words, when known
    memories: tuple[str, ...] = ()  # what the user told Heartline before, most relevant first
    recent_replies: tuple[str, ...] = ()  # what Heartline said to them lately, oldest first
    # The earlier statement the message asks about or leans on: None until someone looked,
    # "" when they looked and it is about none.
    recalled: str | None = None


@dataclass(frozen=True)
class ReplyRequest:
    """Everything a reply generator may use: the prompt, and what it was built from."""

    messages: list[ChatMessage]
    persona: str
    emotion: FusedEmotion
    user_key: str
    context: ReplyContext = ReplyContext()


@dataclass(frozen=True)
class Memory:
    """Something the user said before, as the reply generator should see it."""

    text: str
    role: str = "user"
    when: str | None = None


@dataclass(frozen=True)
class VoiceProfile:
    """A user's registered voice: their own checked clips and what was fitted from them.

    `conversion` holds whatever the offline voice converter fitted (JSON-safe, a few kB);
    neural engines such as XTTS clone from `clips` directly.
    """

    user_key: str
    clips: tuple[bytes, ...] = field(repr=False)  # WAV bytes of the user's own recordings
    transcripts: tuple[str, ...] = ()
    embedding: tuple[float, ...] | None = None
    conversion: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class VoiceStyle:
    """How the reply should sound: 1.0 is the voice's neutral delivery."""

    rate: float = 1.0
    energy: float = 1.0
    pitch: float = 1.0


@dataclass
class ReplyAudio:
    data: bytes = field(repr=False)  # the encoded audio; left out of to_dict(), which is JSON
    mime_type: str
    duration_s: float
    waveform: str = ""  # base64 of up to 256 loudness bytes, as Discord voice messages carry


@dataclass
class Safety:
    """`is_safe` and `toxicity_scores` are about the reply sent; `input_*` about the user's words."""

    is_safe: bool
    toxicity_scores: dict[str, float]
    action: str
    input_scores: dict[str, float] = field(default_factory=dict)
    input_flags: list[str] = field(default_factory=list)


@dataclass
class EmotionAnalysis:
    text_emotions: list[EmotionScore]
    image_emotion: EmotionScore | None
    voice_emotion: EmotionScore | None
    fused_emotion: FusedEmotion


@dataclass
class UserInput:
    text: str
    transcript: str | None
    has_audio: bool
    has_image: bool


@dataclass
class Metadata:
    processing_time: float
    stage_times: dict[str, float]
    models: dict[str, str]
    timestamp: str
    skipped_stages: dict[str, str] = field(default_factory=dict)
    persona: str = ""
    language: str | None = None
    message_id: int | None = None
    bot_mood: dict[str, Any] = field(default_factory=dict)  # BotMood.to_dict()


@dataclass
class TurnResult:
    user_input: UserInput
    emotion_analysis: EmotionAnalysis
    response: str
    reply_audio: ReplyAudio | None
    safety: Safety
    metadata: Metadata

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        if result["reply_audio"]:
            del result["reply_audio"]["data"]
        return result
