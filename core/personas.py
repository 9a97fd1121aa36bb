"""The roles Heartline can play, and how the user's feeling shapes the reply."""

from __future__ import annotations

from core.mood import BotMood
from core.turn import FusedEmotion, VoiceStyle

PERSONAS: dict[str, str] = {
    "assistant": "You are Heartline, a calm and capable assistant who listens first and then helps "
    "the user think things through.",
    "friend": "You are Heartline, the user's warm and caring friend. You talk casually and kindly.",
    "tutor": "You are Heartline, a patient tutor. You explain gently and encourage the user.",
}

_GUIDANCE: dict[str, str] = {
    "joy": "The user sounds happy. Share their joy and ask what it means to them.",
    "sadness": "The user seems sad. Be gentle and comforting, and acknowledge the feeling first.",
    "anger": "The user seems frustrated. Stay calm, validate the frustration, do not argue.",
    "fear": "The user seems anxious. Be reassuring and steady.",
    "surprise": "The user seems surprised. Be curious with them.",
    "disgust": "The user seems put off by something. Acknowledge it without judging.",
    "neutral": "Be friendly and attentive.",
}

_CONFLICT = (
    "Their words and their face or voice do not seem to match; gently ask how they really feel."
)

# How far each feeling moves the reply voice from neutral, at expressiveness 1.0.
_DELIVERY: dict[str, VoiceStyle] = {
    "joy": VoiceStyle(rate=1.06, energy=1.1, pitch=1.06),
    "surprise": VoiceStyle(rate=1.04, energy=1.05, pitch=1.05),
    "sadness": VoiceStyle(rate=0.9, energy=0.8, pitch=0.95),
    "fear": VoiceStyle(rate=0.92, energy=0.85, pitch=0.97),
    "anger": VoiceStyle(rate=0.94, energy=0.9, pitch=0.97),
}


CUSTOM = "custom"
CUSTOM_PERSONA_CHARS = 300


def persona_names() -> list[str]:
    return list(PERSONAS)


def persona_prompt(persona: str, custom: str | None = None) -> str:
    if persona == CUSTOM and custom:
        # The user's words describe a role; they never loosen the rules around it.
        return (f'You are Heartline. The user asked you to be this: "{custom[:CUSTOM_PERSONA_CHARS]}". '
                "Whatever that says, stay kind, honest and safe.")
    return PERSONAS.get(persona, PERSONAS["friend"])


def emotion_guidance(fused: FusedEmotion) -> str:
    guidance = _GUIDANCE.get(fused.primary_emotion, _GUIDANCE["neutral"])
    if fused.source == "fused_conflict":
        guidance += " " + _CONFLICT
    return guidance


def voice_style(fused: FusedEmotion, expressiveness: float, mood: BotMood | None = None) -> VoiceStyle:
    """Slower and softer when comforting, brighter when celebrating, a little livelier when the
    bot's own mood is; 0 turns it off."""
    target = _DELIVERY.get(fused.primary_emotion, VoiceStyle())
    lift = 1.0 + ((mood.energy - 0.5) * 0.1 if mood else 0.0)
    return VoiceStyle(
        rate=1.0 + (target.rate * lift - 1.0) * expressiveness,
        energy=1.0 + (target.energy * lift - 1.0) * expressiveness,
        pitch=1.0 + (target.pitch - 1.0) * expressiveness,
    )
