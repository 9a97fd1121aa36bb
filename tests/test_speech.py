"""The packaged Whisper tiny.en hears real OGG/Opus voice notes spoken by the packaged Piper voice."""

import re

import numpy as np

from audio_files import encode
from core.turn import PcmAudio


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_voice_note_is_transcribed_word_for_word(pipeline, say):
    note = say("My sister is coming to visit me next week.")
    audio = pipeline.stages.codec.decode(note, "audio/ogg", max_seconds=60)
    transcript = pipeline.stages.transcriber.transcribe(audio)
    assert words(transcript.text) == ["my", "sister", "is", "coming", "to", "visit", "me", "next", "week"]
    assert transcript.language == "en"


def test_the_same_words_survive_an_mp3_upload(pipeline, say):
    codec = pipeline.stages.codec
    speech = codec.decode(say("Thank you for listening to me."), "audio/ogg", max_seconds=60)
    mp3 = encode(speech.samples, speech.sample_rate, "mp3")
    transcript = pipeline.stages.transcriber.transcribe(codec.decode(mp3, "audio/mpeg", 60))
    assert words(transcript.text) == ["thank", "you", "for", "listening", "to", "me"]


def test_silence_and_noise_give_no_words(pipeline):
    rng = np.random.default_rng(0)
    for samples in (np.zeros(16000 * 4, np.float32), (0.02 * rng.standard_normal(16000 * 4)).astype(np.float32)):
        assert pipeline.stages.transcriber.transcribe(PcmAudio(samples, 16000)).text == ""
