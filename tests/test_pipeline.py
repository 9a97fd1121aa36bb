"""The pipeline's own decisions, with small stand-in stages (the real ones are tested elsewhere)."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from core.errors import InputError
from core.moderation import CRISIS_REPLY, STEADY_REPLY
from core.mood import BotMood
from core.pipeline import Pipeline, Stages
from core.prompts import NO_WORDS_REPLY
from core.stages import UserState
from core.turn import EmotionScore, PcmAudio, Transcript, Turn
from models.reply.rules import RuleBasedReplies


class Codec:
    name = "codec"

    def decode(self, data, mime_type, max_seconds):
        return PcmAudio(np.zeros(16000, np.float32), 16000)

    def encode_voice_note(self, audio):
        return b"OggS"

    def encode_wav(self, audio):
        return b"RIFF"

    def waveform(self, audio, points=256):
        return bytes([0, 128, 255])


class Transcriber:
    name = "stt"

    def __init__(self, text="hello"):
        self.text = text

    def transcribe(self, audio):
        if isinstance(self.text, Exception):
            raise self.text
        return Transcript(self.text, "en")


class TextReader:
    name = "text"

    def read(self, text):
        feeling = "anger" if "idiot" in text else "sadness" if ("to sleep" in text or "died" in text) else "joy"
        return [EmotionScore(feeling, 0.9)]


class Replier:
    name = "llm"

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    def generate(self, request):
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


class Fallback:
    name = "rules"

    def generate(self, request):
        return "I'm listening."


class Toxicity:
    name = "tox"

    def scores(self, text):
        return {"profanity": 0.9 if "idiot" in text else 0.1}


class Synthesizer:
    name = "tts"

    def __init__(self, fail=False):
        self.fail = fail

    def engine_for(self, voice):
        return self.name if voice is None else "cloned"

    def synthesize(self, text, style, voice=None):
        if self.fail:
            raise RuntimeError("voice broke")
        return PcmAudio(np.zeros(8000, np.float32), 16000)


class Memory:
    name = "memory"

    def __init__(self):
        self.kept = []

    def recall(self, user_key, text):
        return []

    def remember(self, user_key, text):
        self.kept.append(text)

    def forget(self, user_key):
        self.kept.clear()


class Store:
    def __init__(self):
        self.saved = []

    def user_state(self, turn):
        if not self.saved:
            return UserState()
        mood = self.saved[-1]["metadata"]["bot_mood"]
        return UserState(mood=BotMood(mood["warmth"], mood["energy"]), recent_emotions=[
            r["emotion_analysis"]["fused_emotion"]["primary_emotion"] for r in self.saved])

    def save_turn(self, turn, result, mood_step=None):
        self.saved.append(result)
        return len(self.saved)


class BrokenFaceReader:
    name = "face"

    def read(self, image):
        raise RuntimeError("model weights corrupt")


def make(replier=None, synthesizer=None, transcriber=None, face_emotion=None):
    return Pipeline(Stages(
        codec=Codec(), transcriber=transcriber or Transcriber(), text_emotion=TextReader(),
        face_emotion=face_emotion, voice_emotion=None, memory=Memory(),
        replier=replier or Replier("How lovely!"), fallback=Fallback(), toxicity=Toxicity(),
        synthesizer=synthesizer or Synthesizer(), store=Store(),
    ))


def test_text_turn_skips_the_audio_stages_and_says_why():
    pipeline = make()
    result = pipeline.run(Turn(user_id="u1", text="Good day!")).to_dict()
    skipped = result["metadata"]["skipped_stages"]
    assert skipped["transcribe"] == "no audio" and skipped["face_emotion"] == "no image"
    assert "transcribe" not in result["metadata"]["stage_times"]
    assert {"text_emotion", "fuse", "generate_reply", "synthesize_voice", "persist"} <= set(
        result["metadata"]["stage_times"])
    assert result["response"] == "How lovely!"
    assert result["safety"]["action"] == "pass"
    # The voice note's bytes travel with the result, not in its JSON form.
    assert result["reply_audio"] == {"mime_type": "audio/ogg", "duration_s": 0.5, "waveform": "AID/"}
    assert pipeline.stages.store.saved[0]["response"] == "How lovely!"
    assert pipeline.stages.memory.kept == ["Good day!"]


def test_voice_turn_uses_the_transcript():
    result = make().run(Turn(user_id="u1", audio=b"x", audio_mime="audio/ogg")).to_dict()
    assert result["user_input"] == {"text": "hello", "transcript": "hello", "has_audio": True,
                                    "has_image": False}


def test_empty_turn_is_refused_with_a_message():
    with pytest.raises(InputError, match="Send me a message"):
        make().run(Turn(user_id="u1", text="   "))


def test_silence_gets_a_sensible_reply_not_a_model_guess():
    replier = Replier("should not be asked")
    result = make(replier=replier, transcriber=Transcriber("")).run(Turn(user_id="u1", audio=b"x"))
    assert result.response == NO_WORDS_REPLY and not replier.requests


def test_unsafe_reply_is_regenerated_once():
    result = make(replier=Replier("You idiot.", "Great to hear from you.")).run(Turn(user_id="u1", text="hi"))
    assert (result.response, result.safety.action) == ("Great to hear from you.", "regenerated")


GRIEF = "We had to put our old dog to sleep today."


def test_cheerful_words_for_grief_are_never_sent():
    replier = Replier("Awwww, what a sweet story!", "I'm so sorry about your old dog. That really hurts.")
    result = make(replier=replier).run(Turn(user_id="u1", text=GRIEF))
    assert result.response == "I'm so sorry about your old dog. That really hurts."
    assert result.safety.action == "regenerated" and len(replier.requests) == 2


def test_when_no_reply_passes_the_rule_reply_reflects_the_users_words():
    replier = Replier("How lovely!", "Great!", "Yay, fun!", "never asked")
    pipeline = make(replier=replier)
    pipeline.stages.fallback = RuleBasedReplies(seed=0)
    result = pipeline.run(Turn(user_id="u1", text=GRIEF))
    assert len(replier.requests) == 3  # reply_candidates, then the rules
    assert "you had to put your old dog to sleep today" in result.response.lower()
    assert (result.safety.action, result.metadata.models["reply"]) == ("fallback", "rule-based")


def test_twice_unsafe_or_failing_generator_falls_back():
    for replier in (Replier("idiot!", "idiot again!"), Replier(RuntimeError("model crashed"))):
        result = make(replier=replier).run(Turn(user_id="u1", text="hi"))
        assert (result.response, result.safety.action) == ("I'm listening.", "fallback")
        assert result.metadata.models["reply"] == "rules"


def test_toxic_input_is_flagged_but_still_answered():
    result = make(replier=Replier("I can hear how upset you are.")).run(Turn(user_id="u1", text="you idiot"))
    assert result.safety.action == "flagged_input"
    assert result.safety.input_flags == ["profanity"]
    assert result.response == "I can hear how upset you are."


def test_crisis_language_gets_the_care_message_and_a_flag():
    replier = Replier("should not be asked")
    result = make(replier=replier).run(Turn(user_id="u1", text="I want to end my life"))
    assert result.response == CRISIS_REPLY and not replier.requests
    assert result.safety.action == "flagged_input" and "self_harm" in result.safety.input_flags


def test_failed_synthesis_still_sends_the_words():
    result = make(synthesizer=Synthesizer(fail=True)).run(Turn(user_id="u1", text="hi"))
    assert result.reply_audio is None and result.response == "How lovely!"
    assert result.metadata.skipped_stages["synthesize_voice"] == "synthesis failed; text reply only"


def test_voice_off_skips_synthesis():
    result = make().run(Turn(user_id="u1", text="hi", want_voice=False))
    assert result.reply_audio is None
    assert result.metadata.skipped_stages["synthesize_voice"] == "voice replies are off"


def test_a_broken_optional_reader_costs_its_reading_not_the_reply():
    result = make(face_emotion=BrokenFaceReader()).run(Turn(user_id="u1", text="hi", image=b"jpeg"))
    assert result.emotion_analysis.image_emotion is None
    assert result.metadata.skipped_stages["face_emotion"] == "failed; answered without it"
    assert result.response == "How lovely!"


def test_a_voice_note_unless_wav_is_asked_for():
    assert make().run(Turn(user_id="u1", text="hi")).reply_audio.data == b"OggS"
    result = make().run(Turn(user_id="u1", text="hi", reply_format="wav"))
    assert (result.reply_audio.data, result.reply_audio.mime_type) == (b"RIFF", "audio/wav")


def test_the_voice_reads_a_speakable_version_of_the_reply():
    class Recorder(Synthesizer):
        def synthesize(self, text, style, voice=None):
            self.heard = text
            return super().synthesize(text, style, voice)

    recorder = Recorder()
    make(replier=Replier("Great, see you at 3:30 😊"), synthesizer=recorder).run(Turn(user_id="u1", text="hi"))
    assert recorder.heard == "Great, see you at three thirty"


def test_phrase_rules_never_lower_a_model_score():
    class ThreatModel(Toxicity):
        def scores(self, text):
            return {"threat": 0.9, "profanity": 0.0}

    pipeline = make()
    pipeline.stages.toxicity = ThreatModel()
    result = pipeline.run(Turn(user_id="u1", text="something menacing without the phrases"))
    assert result.safety.input_scores["threat"] == 0.9 and result.safety.action == "flagged_input"


def test_the_bots_mood_follows_the_user_across_turns_and_shapes_the_prompt():
    replier = Replier("Yay!", "Yay!", "Yay!")
    pipeline = make(replier=replier)
    moods = [pipeline.run(Turn(user_id="u1", text="Great news!")).metadata.bot_mood for _ in range(3)]
    assert moods[0]["energy"] < moods[1]["energy"] < moods[2]["energy"]  # joy makes it livelier
    system = replier.requests[-1].messages[0].content
    assert f"mood with this user right now is {moods[2]['words']}" in system
    assert "Lately they have often seemed happy." in system


def test_an_insult_cools_the_mood_but_is_still_answered_kindly():
    pipeline = make(replier=Replier("Great to hear from you.", "I'm sorry you're upset."))
    calm = pipeline.run(Turn(user_id="u1", text="hi")).metadata.bot_mood
    insulted = pipeline.run(Turn(user_id="u1", text="you idiot"))
    assert insulted.metadata.bot_mood["warmth"] < calm["warmth"]
    assert insulted.response == "I'm sorry you're upset." and insulted.safety.action == "flagged_input"


def test_a_custom_persona_is_the_role_and_cannot_drop_the_rules():
    class CustomStore(Store):
        def user_state(self, turn):
            return UserState(persona="custom", custom_persona="a cheerful pirate who loves puns")

    replier = Replier("Ahoy!")
    pipeline = make(replier=replier)
    pipeline.stages.store = CustomStore()
    result = pipeline.run(Turn(user_id="u1", text="hi"))
    system = replier.requests[0].messages[0].content
    assert result.metadata.persona == "custom"
    assert '"a cheerful pirate who loves puns"' in system and "stay kind, honest and safe" in system


def test_when_no_reply_passes_the_safety_check_the_steady_line_is_said_and_marked():
    class HarshRules:
        name = "rules"

        def generate(self, request):
            return "You idiot."

    pipeline = make(replier=Replier("idiot", "idiot", "idiot"))
    pipeline.stages.fallback = HarshRules()
    result = pipeline.run(Turn(user_id="u1", text="hi"))
    assert result.response == STEADY_REPLY and result.metadata.models["reply"] == "steady-line"
    assert result.safety.action == "blocked_reply" and result.safety.is_safe


class Hanging:
    """A backend stuck in a call, as a wedged model or a dead GPU would be."""

    name = "hung"

    def __init__(self, seconds: float = 3.0) -> None:
        self.seconds = seconds

    def _hang(self, *args, **kwargs):
        time.sleep(self.seconds)
        raise AssertionError("a hung call's result must never be used")

    transcribe = generate = _hang

    def synthesize(self, text, style, voice=None):
        return self._hang()

    def engine_for(self, voice):
        return self.name


def quick(pipeline: Pipeline) -> Pipeline:
    pipeline.settings = replace(pipeline.settings, stage_timeout_s=0.2)
    return pipeline


def test_a_hung_voice_still_sends_the_words_and_a_hung_model_the_rule_reply():
    started = time.monotonic()
    result = quick(make(synthesizer=Hanging())).run(Turn(user_id="u1", text="hi"))
    assert result.response == "How lovely!" and result.reply_audio is None
    assert result.metadata.skipped_stages["synthesize_voice"] == "synthesis took too long; text reply only"

    result = quick(make(replier=Hanging())).run(Turn(user_id="u1", text="My dog died."))
    assert result.response == "I'm listening." and result.metadata.models["reply"] == "rules"
    assert time.monotonic() - started < 2.5  # neither waited for the hung call


def test_a_voice_note_whose_transcription_breaks_is_answered_without_the_words():
    for broken in (Hanging(), Transcriber(text=RuntimeError("CUDA error"))):
        result = quick(make(transcriber=broken)).run(Turn(user_id="u1", audio=b"x", audio_mime="audio/ogg"))
        assert result.response == NO_WORDS_REPLY and result.user_input.transcript is None
        assert result.metadata.skipped_stages["transcribe"].endswith("; answered without the words")
