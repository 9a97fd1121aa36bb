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


def test_train_on_your_own_clips_resume_and_load_the_result_as_the_reader(tmp_path, data_dir):
    """`heartline train voice-emotion` on clips generated as the project's data is (one eSpeak
    voice acting four emotions), then the model loaded by the real reader through its setting."""
    import shutil

    from models.tools.voice_emotion_data import build_heldout

    listing = build_heldout(tmp_path / "clips", workers=1, voices=("espeak:en-us",))  # 48 clips
    out = tmp_path / "my-voice-model"
    done = heartline("train", "voice-emotion", "--data", str(listing), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["trained_on"], report["validated_on"]) == (38, 10) and report["macro_f1"] >= 0.5
    assert "reading clips" in done.stderr  # the progress bar
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG" and (out / "metrics.json").is_file()

    again = heartline("train", "voice-emotion", "--data", str(listing), "--out", str(out))
    assert "resuming: 48 of 48 clips read before" in again.stderr

    mine = {"HEARTLINE_VOICE_EMOTION_MODEL_DIR": str(out)}
    scored = json.loads(heartline("eval", "emotion", "--modality", "voice", "--data", str(listing),
                                  "--out", str(tmp_path / "eval"), "--json", env=mine).stdout)
    assert scored["model"] == "prosody+logreg:my-voice-model" and scored["accuracy"] >= 0.5
    [stage] = [s for s in json.loads(heartline("models", "list", "--json", env=mine).stdout)
               if s["stage"] == "voice_emotion"]
    assert stage["present"] and stage["source"].endswith("model.joblib")

    bad = listing.parent / "bad.jsonl"
    lines = listing.read_text().splitlines()
    bored = {"audio": json.loads(lines[1])["audio"], "label": "bored"}
    bad.write_text("\n".join([lines[0], json.dumps(bored), *lines[2:]]))
    refused = heartline("train", "voice-emotion", "--data", str(bad), "--out", str(tmp_path / "bad"))
    assert refused.returncode != 0 and "line 2: 'bored' is no emotion Heartline knows" in refused.stderr

    folders = tmp_path / "folders"
    for row in map(json.loads, lines[:16]):
        (folders / row["labels"][0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(listing.parent / row["audio"], folders / row["labels"][0])
    (folders / "sad" / "broken.wav").write_bytes(b"RIFF not really")
    refused = heartline("train", "voice-emotion", "--data", str(folders), "--out", str(tmp_path / "f"))
    assert refused.returncode != 0 and "sad/broken.wav: " in refused.stderr
