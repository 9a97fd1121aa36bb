"""The rule-based empathetic fallback: used when the model fails or its reply is unsafe.

Short, varied lines keyed by the fused emotion and persona, never the same line twice in a row
for one user.
"""

from __future__ import annotations

import random
from threading import Lock

from core.turn import ReplyRequest

_LINES: dict[str, tuple[str, ...]] = {
    "joy": (
        "That's wonderful news! Tell me more about it.",
        "I love hearing that. What made it happen?",
        "That sounds like a real win. How are you celebrating?",
    ),
    "sadness": (
        "I'm sorry you're going through this. I'm here with you.",
        "That sounds really hard. Do you want to tell me more?",
        "It's okay to feel down. Take your time, I'm listening.",
    ),
    "anger": (
        "That sounds really frustrating. What happened?",
        "I can hear how upset you are. Want to talk it through?",
        "It makes sense to be angry about that. I'm listening.",
    ),
    "fear": (
        "That sounds scary. You're not alone with it.",
        "It's understandable to feel anxious. What worries you most?",
        "Let's take it one step at a time. I'm right here.",
    ),
    "surprise": (
        "Wow, I didn't see that coming either! How do you feel about it?",
        "That's unexpected! Tell me more.",
    ),
    "disgust": (
        "That sounds really unpleasant. I'm sorry you had to deal with it.",
        "Ugh, that doesn't sound okay at all. What happened?",
    ),
    "neutral": (
        "I'm listening. Tell me more.",
        "How are you feeling about it?",
        "Thanks for sharing that with me. What's on your mind?",
    ),
}
_TUTOR_SUFFIX = " We can work through it together."


class RuleBasedReplies:
    name = "rule-based"

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._last: dict[str, str] = {}
        self._lock = Lock()

    def generate(self, request: ReplyRequest) -> str:
        lines = _LINES.get(request.emotion.primary_emotion, _LINES["neutral"])
        with self._lock:
            last = self._last.get(request.user_key)
            line = self._random.choice([line for line in lines if line != last] or list(lines))
            self._last[request.user_key] = line
        if request.persona == "tutor":
            return line + _TUTOR_SUFFIX
        return line
