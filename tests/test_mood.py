"""Heartline's own mood and the user's trend, as plain functions."""

from core.mood import RESTING, BotMood, next_mood, trend_guidance
from core.turn import FusedEmotion


def feeling(emotion: str, confidence: float = 1.0) -> FusedEmotion:
    return FusedEmotion(emotion, confidence, "text_only")


def test_sadness_makes_the_bot_tender_and_quiet_and_joy_lively():
    sad, happy = next_mood(None, feeling("sadness")), next_mood(None, feeling("joy"))
    assert sad.warmth > RESTING.warmth and sad.energy < RESTING.energy
    assert happy.energy > RESTING.energy
    for _ in range(2):
        sad, happy = next_mood(sad, feeling("sadness")), next_mood(happy, feeling("joy"))
    assert (sad.words(), happy.words()) == ("tender and quiet", "warm and lively")


def test_an_unsure_reading_moves_the_mood_less():
    assert next_mood(None, feeling("joy", 0.3)).energy < next_mood(None, feeling("joy", 0.9)).energy


def test_the_mood_rests_between_conversations():
    lively = BotMood(0.8, 0.9)
    soon = next_mood(lively, feeling("neutral"), hours_since=0.1)
    days_later = next_mood(lively, feeling("neutral"), hours_since=72)
    assert abs(days_later.energy - RESTING.energy) < 0.01 < abs(soon.energy - RESTING.energy)


def test_hostility_cools_the_mood_but_never_below_civil():
    mood = RESTING
    for _ in range(20):
        mood = next_mood(mood, feeling("anger"), hostile=True)
    assert mood.warmth < RESTING.warmth
    assert mood.words().startswith("reserved")


def test_the_trend_names_a_feeling_that_keeps_coming_back():
    assert trend_guidance(["sadness", "neutral", "sadness", "sadness"]) == "Lately they have often seemed sad."
    assert trend_guidance(["sadness", "sadness", "joy"]) == (
        "Lately they have often seemed sad, though this message reads happy.")
    assert trend_guidance(["neutral", "neutral", "neutral"]) == ""
    assert trend_guidance(["joy", "sadness", "anger", "fear"]) == ""
    assert trend_guidance(["sadness"]) == ""
