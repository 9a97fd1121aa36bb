"""The voice-emotion reader on a voice it never trained on: Piper's joe (training heard eSpeak NG)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.turn import PcmAudio, VoiceStyle
from test_cli import heartline

SENTENCE = "I walked to the station this morning and the train was late again."  # in neither split


@pytest.fixture(scope="module")
def reader(settings):
    from config import wiring

    return wiring.voice_emotion_reader(settings)


@pytest.fixture(scope="module")
def plain():
    from models.voice.stock_voices import DEFAULT_VOICE, load_voice

    return load_voice(DEFAULT_VOICE).synthesize(SENTENCE, VoiceStyle())


@pytest.fixture(scope="module")
def acted(plain):
    """The plain sentence re-spoken in each emotion's prosody, as the data set is made."""
    from models.emotion.prosody import RATE
    from models.audio.dsp import resample_to
    from models.voice.conversion import Analysis
    from models.tools.voice_emotion_data import express

    clip = Analysis(resample_to(plain, RATE))
    return {emotion: express(clip, emotion, np.random.default_rng(1)) for emotion in ("angry", "sad")}


def test_angry_prosody_reads_aroused_and_sad_prosody_sad(reader, acted):
    loud, low = reader.read(acted["angry"]), reader.read(acted["sad"])
    assert loud.emotion in ("angry", "happy")  # both are high arousal; telling them apart is harder
    assert low.emotion == "sad"
    assert 0.25 < loud.confidence <= 1 and 0.25 < low.confidence <= 1


@pytest.mark.parametrize("samples", [np.zeros(16_000), np.zeros(10),
                                     np.random.default_rng(0).normal(0, 0.1, 3_000)],
                         ids=["silence", "ten-samples", "a-blip-of-noise"])
def test_nothing_to_hear_is_neutral_with_no_confidence(reader, samples):
    reading = reader.read(PcmAudio(samples.astype(np.float32), 16_000))
    assert (reading.emotion, reading.confidence) == ("neutral", 0.0)


def test_voice_eval_scores_a_labelled_set(tmp_path, data_dir, acted):
    from models.audio.codec import PyAvCodec

    codec = PyAvCodec()
    (tmp_path / "quiet.wav").write_bytes(codec.encode_wav(PcmAudio(np.zeros(16_000, np.float32), 16_000)))
    (tmp_path / "low.wav").write_bytes(codec.encode_wav(acted["sad"]))
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    rows = [
        {"audio": "quiet.wav", "labels": ["neutral"]},
        {"audio": "low.wav", "labels": ["sad"]},
        {"audio": "low.wav", "labels": ["angry"]},  # mislabelled
        {"audio": "broken.wav", "labels": ["happy"]},  # unreadable: predicted "none"
    ]
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    done = heartline("eval", "emotion", "--modality", "voice", "--data", str(tmp_path / "set.jsonl"),
                     "--json", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["samples"] == 4 and report["accuracy"] == 0.5
    assert report["per_class"]["sadness"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    assert report["per_class"]["neutral"]["f1"] == 1.0
    assert report["macro_f1"] == round((1.0 + 0.6667) / 4, 4)
    assert report["confusion"]["anger"]["sadness"] == 1 and report["confusion"]["joy"]["none"] == 1


def test_voice_sets_are_a_folder_per_label_or_jsonl_naming_its_files(tmp_path):
    from bots.evaluate import audio_samples

    for label, name in (("sad", "a.ogg"), ("happy", "b.wav"), ("happy", "notes.txt")):
        (tmp_path / "set" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "set" / label / name).write_bytes(b"")
    assert audio_samples(tmp_path / "set") == [(tmp_path / "set" / "happy" / "b.wav", "joy"),
                                               (tmp_path / "set" / "sad" / "a.ogg", "sadness")]
    (tmp_path / "gone.jsonl").write_text('{"audio": "set/sad/a.ogg", "labels": ["sad"]}\n'
                                         '{"audio": "nowhere.wav", "labels": ["sad"]}\n')
    with pytest.raises(ValueError, match="1 audio files are missing.*nowhere.wav"):
        audio_samples(tmp_path / "gone.jsonl")
