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


def test_transcribe_command_reads_many_files_and_reports_the_bad_one(tmp_path, pipeline, say):
    import json

    from test_cli import heartline

    codec = pipeline.stages.codec
    (tmp_path / "a.ogg").write_bytes(say("Thank you for listening to me."))
    speech = codec.decode(say("My sister is coming to visit me next week."), "audio/ogg", 60)
    (tmp_path / "b.mp3").write_bytes(encode(speech.samples, speech.sample_rate, "mp3"))
    (tmp_path / "c.ogg").write_bytes(b"not audio")
    done = heartline("transcribe", str(tmp_path / "a.ogg"), str(tmp_path / "b.mp3"),
                     str(tmp_path / "c.ogg"), "--json")
    assert done.returncode == 1
    rows = json.loads(done.stdout)
    assert [(row["file"][-5:], words(row["text"]), row["language"]) for row in rows] == [
        ("a.ogg", ["thank", "you", "for", "listening", "to", "me"], "en"),
        ("b.mp3", ["my", "sister", "is", "coming", "to", "visit", "me", "next", "week"], "en"),
    ]
    assert rows[0]["duration_s"] > 1.0
    assert f"{tmp_path / 'c.ogg'}: I couldn't read that audio" in done.stderr
