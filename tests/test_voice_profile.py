"""/voice train end to end as an operator runs it: a synthetic speaker (an eSpeak NG voice the
default reply voice is not) registers three clips; replies then come in a voice styled on it,
and `heartline eval voice` measures how close."""

from __future__ import annotations

import json
import re

import pytest

from core.turn import VoiceStyle
from models.audio.codec import PyAvCodec
from models.voice.stock_voices import load_voice
from test_cli import heartline

SENTENCES = (
    "Hello, this is my own voice, and I am reading a few sentences aloud for you today.",
    "Yesterday I walked along the river with my sister and we talked about our plans for summer.",
    "I like making soup on cold evenings, especially with carrots, onions and a little ginger.",
)


def clips(folder, voice_name: str, count: int = 3) -> list[str]:
    voice, codec = load_voice(voice_name), PyAvCodec()
    paths = []
    for index, sentence in enumerate(SENTENCES[:count]):
        path = folder / f"{voice_name.split('+')[-1]}-{index}.ogg"
        path.write_bytes(codec.encode_voice_note(voice.synthesize(sentence, VoiceStyle())))
        paths.append(str(path))
    return paths


def test_a_registered_voice_speaks_the_replies_and_closes_much_of_the_gap(tmp_path, data_dir):
    files = clips(tmp_path, "espeak:en-us+f3")
    refused = heartline("voice", "train", "--user", "u2", *files)
    assert refused.returncode == 2 and "consent" in refused.stderr

    trained = heartline("voice", "train", "--user", "u2", "--consent", *files)
    assert trained.returncode == 0, trained.stderr
    # A progress bar for each part of the minutes of work (comparing with every stock voice
    # first, too, on an install that has not done it yet).
    assert "trying the nearest voices on your words" in trained.stderr
    assert "fitting the voice to yours" in trained.stderr
    # The nearest stock voice to a woman's voice is one of Kokoro's women's voices.
    assert re.search(r"replies use world-vc:kokoro:[ab]f_", trained.stdout), trained.stdout
    assert "3 clips" in heartline("voice", "status", "--user", "u2").stdout

    reply = heartline("reply", "--user", "u2", "--text", "Tell me something nice.", "--json")
    result = json.loads(reply.stdout)
    assert result["metadata"]["models"]["tts"] == re.search(r"world-vc:\S+", trained.stdout)[0]
    assert result["reply_audio"]["duration_s"] > 0.5

    # 12 of the 36 held-out sentences keep the suite quick. Styled from Kokoro's af_sarah, this
    # speaker closes 0.56 of the gap on 12 and on 36, at 0 % WER (Piper's joe: 0 % on 12, 1 % on
    # 36). The bounds are the issue's, with one word (~0.008) of slack for the small sample.
    measured = heartline("eval", "voice", "--user", "u2", "--sentences", "12", "--json")
    report = json.loads(measured.stdout)
    assert report["similarity_base"] < report["similarity_cloned"] < report["similarity_ceiling"]
    assert report["gap_closed"] >= 0.5
    assert report["wer_cloned"] <= 2 * report["wer_base"] + 0.01

    assert heartline("voice", "delete", "--user", "u2").stdout.strip() == "deleted"
    assert "no registered voice" in heartline("voice", "status", "--user", "u2").stdout


def test_clips_of_two_different_people_are_refused(tmp_path, data_dir):
    files = clips(tmp_path, "espeak:en-us+f3", 2) + clips(tmp_path, "espeak:en-gb-scotland", 1)[:1]
    done = heartline("voice", "train", "--user", "u3", "--consent", *files)
    assert done.returncode == 1
    assert "doesn't sound like the same person" in done.stderr
