"""Heartline's own mood with each user, and the user's recent emotional trend.

The mood (the EmotionGPT idea) is two numbers in [0, 1]: warmth (how tender the bot is) and
energy (how lively). Each exchange pulls it toward a response that suits the user's feeling:
tender and quiet with sadness, bright with joy, calm under anger. It drifts back to its resting
state between conversations, and a hostile message cools it a little, never into hostility.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from core.turn import FusedEmotion


@dataclass(frozen=True)
class BotMood:
    warmth: float = 0.6
    energy: float = 0.5

    def words(self) -> str:
        warmth = "tender" if self.warmth >= 0.8 else "warm" if self.warmth >= 0.5 else "reserved"
        energy = "lively" if self.energy >= 0.65 else "steady" if self.energy >= 0.4 else "quiet"
        return f"{warmth} and {energy}"

    def to_dict(self) -> dict[str, float | str]:
        return {"warmth": round(self.warmth, 3), "energy": round(self.energy, 3), "words": self.words()}


RESTING = BotMood()
# Where each of the user's feelings pulls the bot's mood.
_PULL: dict[str, BotMood] = {
    "joy": BotMood(0.8, 0.85),
    "surprise": BotMood(0.65, 0.75),
    "sadness": BotMood(0.95, 0.25),
    "fear": BotMood(0.9, 0.3),
    "anger": BotMood(0.7, 0.3),
    "disgust": BotMood(0.65, 0.4),
}
HOSTILE = BotMood(0.35, 0.35)
STEP = 0.35  # how far one confident message moves the mood toward its pull
HALF_LIFE_HOURS = 12.0


def next_mood(mood: BotMood | None, fused: FusedEmotion, hours_since: float = 0.0,
              hostile: bool = False) -> BotMood:
    """The mood after this message: first rest for the time that passed, then respond to it."""
    mood = mood or RESTING
    rested = 0.5 ** (max(hours_since, 0.0) / HALF_LIFE_HOURS)
    mood = _toward(RESTING, mood, rested)
    pull = HOSTILE if hostile else _PULL.get(fused.primary_emotion, RESTING)
    return _toward(mood, pull, STEP * (1.0 if hostile else fused.confidence))


def _toward(start: BotMood, target: BotMood, share: float) -> BotMood:
    share = min(max(share, 0.0), 1.0)
    return BotMood(start.warmth + (target.warmth - start.warmth) * share,
                   start.energy + (target.energy - start.energy) * share)


def mood_guidance(mood: BotMood) -> str:
    return f"Your own mood with this user right now is {mood.words()}; let it colour your tone."


def trend_guidance(recent: list[str]) -> str:
    """A sentence about how the user has seemed over their last messages (oldest first)."""
    feelings = [emotion for emotion in recent if emotion != "neutral"]
    if len(recent) < 3 or not feelings:
        return ""
    main, count = Counter(feelings).most_common(1)[0]
    if count * 2 < len(recent):
        return ""
    sentence = f"Lately they have often seemed {ADJECTIVE[main]}"
    if recent[-1] != main:
        sentence += f", though this message reads {ADJECTIVE[recent[-1]]}"
    return sentence + "."


ADJECTIVE = {"joy": "happy", "sadness": "sad", "anger": "frustrated", "fear": "worried",
             "surprise": "surprised", "disgust": "put off", "neutral": "calm"}
