"""The voice every reply is spoken in: the default voice, or one styled on the user's own.

A registered user is answered by XTTS-v2 (zero-shot from their clips) when its weights are on
this machine, else by the offline converter: the stock voice nearest to them, converted toward
their voice with WORLD. The offline result is "a voice styled on yours", not a clone, and the
result metadata names the engine that spoke.
"""

from __future__ import annotations

from core.turn import PcmAudio, VoiceProfile, VoiceStyle
from models.voice import stock_voices
from models.voice.conversion import shift_pitch


class ReplyVoice:
    def __init__(self, default, cloner=None) -> None:
        self.default = default  # a stock voice: synthesize(text, style)
        self.cloner = cloner  # a neural cloner (XttsSynthesizer) or None
        self.name = default.name

    def engine_for(self, voice: VoiceProfile | None) -> str:
        if voice is None:
            return self.default.name
        if self.cloner is not None:
            return self.cloner.name
        return f"world-vc:{voice.conversion['stock_voice']}" if _styled(voice) else self.default.name

    def synthesize(self, text: str, style: VoiceStyle, voice: VoiceProfile | None = None) -> PcmAudio:
        if voice is not None and self.cloner is not None:
            return self.cloner.synthesize(text, style, voice)
        if voice is not None and _styled(voice):
            return stock_voices.speak_in_user_voice(text, style, voice.conversion)
        audio = self.default.synthesize(text, style)
        # The expressive pitch: WORLD re-synthesis is only worth its cost when the pitch moves.
        return shift_pitch(audio, style.pitch) if abs(style.pitch - 1.0) > 0.005 else audio


def _styled(voice: VoiceProfile) -> bool:
    """Whether the profile's conversion can run here: its stock voice may have been fitted on an
    install that had voices this one lacks (Kokoro's come from `make install`)."""
    return bool(voice.conversion) and voice.conversion["stock_voice"] in stock_voices.reply_voices()
