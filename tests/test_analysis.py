"""`heartline analyze` on a made-up recording of two different voices taking turns, scored
against the ground truth it was made from."""

from __future__ import annotations

import json

import pytest

from bots.cli import main
from models.tools.conversation_data import build


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    return build(tmp_path_factory.mktemp("conversation"))


def test_two_voices_taking_turns_are_told_apart_and_every_utterance_is_read(conversation, pipeline,
                                                                             tmp_path, capsys):
    recording, truth = conversation
    out = tmp_path / "report"
    assert main(["analyze", str(recording), "--ground-truth", str(truth), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["speaker"] for s in report["speakers"]] == ["S1", "S2"]
    assert [u["speaker"] for u in report["utterances"]] == ["S1", "S2"] * 3  # they take turns
    first = report["utterances"][0]
    assert {"speaker", "start", "end", "text", "emotion", "confidence", "reason"} <= set(first)
    assert "grandfather" in first["text"] and first["emotion"] == "sadness" and "voice: sad" in first["reason"]
    scores = report["scores"]
    assert scores["speakers"] == {"true": 2, "found": 2} and scores["diarization_error_rate"] < 0.3
    assert scores["emotion_accuracy"] >= 0.6 and set(scores["emotion_recall"]) == {"sadness", "neutral", "joy", "anger"}
    assert report["summary"].startswith("2 speakers, 6 utterances")
    assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG" and (out / "confusion.png").is_file()


def test_a_bad_ground_truth_is_refused_and_one_speaker_can_be_asked_for(conversation, pipeline, tmp_path, capsys):
    recording, _ = conversation
    bad = tmp_path / "truth.json"
    bad.write_text(json.dumps({"utterances": [{"speaker": "A", "start": 3, "end": 1, "emotion": "sad"}]}))
    assert main(["analyze", str(recording), "--ground-truth", str(bad)]) == 2
    assert "utterance 1 ends before it starts" in capsys.readouterr().err
    assert main(["analyze", str(recording), "--speakers", "1", "--out", str(tmp_path / "one"), "--json"]) == 0
    assert {u["speaker"] for u in json.loads(capsys.readouterr().out)["utterances"]} == {"S1"}


def test_a_recording_with_no_speech_says_so(pipeline, tmp_path, capsys):
    import numpy as np

    from core.turn import PcmAudio
    from models.audio.codec import PyAvCodec

    silence = tmp_path / "silence.wav"
    silence.write_bytes(PyAvCodec().encode_wav(PcmAudio(np.zeros(16000 * 4, np.float32), 16000)))
    assert main(["analyze", str(silence), "--out", str(tmp_path / "out"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"speakers": [], "utterances": [], "summary": "No speech was found in the recording."}
    assert (tmp_path / "out" / "timeline.png").is_file()
