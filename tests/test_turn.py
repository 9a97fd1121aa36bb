"""Whole turns through the real offline models, storage and audio."""

from __future__ import annotations

import io

import av

from core.emotions import VOICE_LABELS
from core.turn import Turn


def test_good_news_reads_as_joy_and_gets_a_spoken_reply(pipeline):
    turn_result = pipeline.run(Turn(user_id="t1", text="I just got the job I wanted!"))
    result = turn_result.to_dict()
    assert result["user_input"] == {"text": "I just got the job I wanted!", "transcript": None,
                                    "has_audio": False, "has_image": False}
    emotions = result["emotion_analysis"]
    assert emotions["fused_emotion"]["primary_emotion"] == "joy"
    assert emotions["fused_emotion"]["source"] == "text_only"
    assert emotions["text_emotions"] and all(0 <= e["confidence"] <= 1 for e in emotions["text_emotions"])
    assert result["response"].strip()
    assert result["metadata"]["models"]["reply"] in ("smollm2-135m-instruct+lora:reply_adapter", "rule-based")
    with av.open(io.BytesIO(turn_result.reply_audio.data)) as note:
        assert note.streams.audio[0].codec_context.name == "opus"
    assert result["reply_audio"]["duration_s"] > 0.5


def test_sad_words_read_as_sadness(pipeline):
    result = pipeline.run(Turn(user_id="t2", text="My grandmother died last night and I miss her.",
                               want_voice=False))
    assert result.emotion_analysis.fused_emotion.primary_emotion == "sadness"


def test_a_voice_note_is_heard_answered_and_remembered(pipeline, say):
    turn = Turn(user_id="t3", audio=say("I am so happy today, we won the match!"), audio_mime="audio/ogg")
    result = pipeline.run(turn)
    assert "won the match" in result.user_input.transcript.lower()
    assert result.user_input.has_audio
    assert result.emotion_analysis.voice_emotion.emotion in VOICE_LABELS
    assert {"decode_audio", "transcribe", "voice_emotion"} <= set(result.metadata.stage_times)
    assert result.metadata.models["voice_emotion"] == "prosody+logreg"
    later = pipeline.stages.memory.recall("cli:t3", "anything")
    assert later[0].text == result.user_input.text and later[1].text == result.response
