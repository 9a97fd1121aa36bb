"""Registration clips are checked with messages a user can act on, and loudness-normalised."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from core.turn import PcmAudio
from models.voice.clips import TARGET_DBFS, check_clip, dbfs, speech_spans


@pytest.fixture(scope="module")
def speech(pipeline, say):
    note = say("Hello, this is my own voice. I am recording it so you can learn how I sound.")
    return pipeline.stages.codec.decode(note, "audio/ogg", 60)


def scaled(audio: PcmAudio, gain: float) -> PcmAudio:
    return PcmAudio(np.clip(audio.samples * gain, -1, 1).astype(np.float32), audio.sample_rate)


def test_a_good_clip_passes_and_is_brought_to_the_target_loudness(speech):
    checked = check_clip(scaled(speech, 0.2))
    assert checked.speech_seconds > 3.0
    spans = speech_spans(checked.audio)
    voiced = np.concatenate([checked.audio.samples[a:b] for a, b in spans])
    assert dbfs(voiced) == pytest.approx(TARGET_DBFS, abs=1.0)


@pytest.mark.parametrize("make, message", [
    (lambda s: PcmAudio(s.samples[: 2 * s.sample_rate], s.sample_rate), "at least 3 seconds"),
    (lambda s: PcmAudio(np.tile(s.samples, 8), s.sample_rate), "under 30 seconds"),
    (lambda s: scaled(s, 20.0), "distorted"),
    (lambda s: scaled(s, 0.01), "very quiet"),
    (lambda s: PcmAudio(np.zeros(5 * s.sample_rate, np.float32), s.sample_rate), "enough speech"),
    (lambda s: PcmAudio((0.05 * np.random.default_rng(1).standard_normal(5 * s.sample_rate))
                        .astype(np.float32), s.sample_rate), "enough speech"),
])
def test_bad_clips_are_refused_with_what_to_do(speech, make, message):
    with pytest.raises(InputError, match=message):
        check_clip(make(speech))
