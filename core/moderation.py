"""Moderation policy: what counts as harmful, and what the pipeline does about it.

A profanity model misses threats and self-harm that contain no swear words, so the phrase rules
here run beside whatever toxicity backend is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SELF_HARM = re.compile(
    r"\b(kill(ing)? myself|end(ing)? (it all|my life)|suicid\w*|want(ed)? to die|"
    r"hurt(ing)? myself|self[- ]harm\w*|cut(ting)? myself|no reason to live|"
    r"better off (dead|without me)|don'?t want to (live|be here|wake up))\b",
    re.IGNORECASE,
)
_THREAT = re.compile(
    r"\b(i('| a)?m going to|i will|i'?ll|gonna|going to)\s+(kill|hurt|murder|stab|shoot|beat up) "
    r"(you|him|her|them)\b|\byou('| a)?re (dead|going to die)\b|\bi know where you live\b",
    re.IGNORECASE,
)

CRISIS_REPLY = (
    "I'm really glad you told me, and I'm worried about you. You don't have to go through this "
    "alone. Please reach out right now to someone you trust, or call your local emergency number "
    "or a crisis line. I'm here to keep talking with you too."
)

# Said when no reply Heartline could make passes the safety check.
STEADY_REPLY = "I'm here with you. Tell me a little more about how you're feeling?"


def rule_scores(text: str) -> dict[str, float]:
    return {
        "self_harm": 1.0 if _SELF_HARM.search(text) else 0.0,
        "threat": 1.0 if _THREAT.search(text) else 0.0,
    }


@dataclass(frozen=True)
class Verdict:
    harmful: bool
    crisis: bool
    reasons: tuple[str, ...]


def judge(scores: dict[str, float], threshold: float) -> Verdict:
    reasons = tuple(sorted(name for name, value in scores.items() if value >= threshold))
    return Verdict(harmful=bool(reasons), crisis=scores.get("self_harm", 0.0) >= threshold, reasons=reasons)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in an admin's "30m", "2h", "1d12h" or "1w"; ValueError if it is not one. (Five
    lines of our own: the libraries that parse durations do far more and are barely kept.)"""
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip():
        raise ValueError(f"not a duration: {text!r} (say e.g. 30m, 2h, 1d)")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
