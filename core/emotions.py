"""One emotion taxonomy: fine labels per reader, one shared space for fusion.

Text readers speak GoEmotions (27 emotions + neutral), face readers the 7 FER labels, voice
readers a handful of speech-emotion classes. Fusion happens in the shared space of Ekman's six
basic emotions plus neutral; the mapping is the one the GoEmotions authors published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.turn import EmotionScore, FusedEmotion

SHARED = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")

_GROUPS = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism",
        "relief", "pride", "admiration", "desire", "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
    "neutral": ("neutral",),
}
TEXT_LABELS = tuple(sorted(label for group in _GROUPS.values() for label in group))
FACE_LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
VOICE_LABELS = ("angry", "happy", "neutral", "sad")

TO_SHARED: dict[str, str] = {label: shared for shared, group in _GROUPS.items() for label in group}
TO_SHARED.update(
    {"angry": "anger", "happy": "joy", "sad": "sadness", "fearful": "fear", "surprised": "surprise",
     "calm": "neutral"}
)


def to_shared(label: str) -> str:
    """The shared-space label for any reader's fine label (unknown labels count as neutral)."""
    return TO_SHARED.get(label.lower(), "neutral")


def shared_distribution(scores: Iterable[EmotionScore]) -> dict[str, float]:
    """Sum fine-label confidences into the shared space.

    A multi-label reader's scores can add up past 1 (grateful 0.9 and relieved 0.8); they are
    scaled back so that no modality outvotes the others by naming one feeling twice.
    """
    totals = dict.fromkeys(SHARED, 0.0)
    for score in scores:
        totals[to_shared(score.emotion)] += score.confidence
    mass = sum(totals.values())
    return {label: value / mass for label, value in totals.items()} if mass > 1 else totals


@dataclass(frozen=True)
class Reading:
    """One modality's say: its name and its fine-label scores."""

    modality: str  # "text" | "image" | "voice"
    scores: tuple[EmotionScore, ...]


def fuse(readings: Iterable[Reading], weights: Mapping[str, float]) -> FusedEmotion:
    """Confidence-weighted vote in the shared space.

    Each modality contributes its shared-space distribution times its weight. If every modality's
    own top label is the winner the readings are aligned and the confidence rises (noisy-OR of the
    modalities' confidences in it); otherwise they conflict and the winner keeps its weighted share.
    """
    # A reader with nothing to go on (a silent voice note) answers with zero confidence: no vote.
    readings = [r for r in readings if any(score.confidence > 0 for score in r.scores)]
    if not readings:
        return FusedEmotion("neutral", 0.0, "none")
    if len(readings) == 1:
        dist = shared_distribution(readings[0].scores)
        top = max(dist, key=dist.get)
        return FusedEmotion(top, round(min(dist[top], 1.0), 4), f"{readings[0].modality}_only")

    totals = dict.fromkeys(SHARED, 0.0)
    tops = []
    for reading in readings:
        dist = shared_distribution(reading.scores)
        tops.append((max(dist, key=dist.get), dist))
        weight = weights.get(reading.modality, 1.0)
        for label, value in dist.items():
            totals[label] += weight * value
    primary = max(totals, key=totals.get)
    if all(top == primary for top, _ in tops):
        doubt = 1.0
        for _, dist in tops:
            doubt *= 1.0 - min(dist[primary], 1.0)
        return FusedEmotion(primary, round(1.0 - doubt, 4), "fused_aligned")
    share = totals[primary] / (sum(totals.values()) or 1.0)
    return FusedEmotion(primary, round(share, 4), "fused_conflict")
