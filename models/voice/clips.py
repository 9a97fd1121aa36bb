"""Checking and preparing the clips a user records to register their voice.

A clip must be the user's own speech, long enough to learn from and clean enough not to
teach the converter noise: 3-30 s, real speech by VAD, not clipped, not too quiet. Checks
return a sentence the user can act on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import InputError
from core.turn import PcmAudio

MIN_SECONDS, MAX_SECONDS = 3.0, 30.0
MIN_SPEECH_SECONDS = 1.5
# A sample at full scale is a clipped sample; a few in a clip are harmless, many are distortion.
CLIPPED_LEVEL, MAX_CLIPPED_FRACTION = 0.999, 0.001
MIN_SPEECH_DBFS = -45.0
TARGET_DBFS = -23.0  # typical speech level (EBU R128), leaving room for peaks


@dataclass(frozen=True)
class CheckedClip:
    audio: PcmAudio  # loudness-normalised
    speech_seconds: float


def speech_spans(audio: PcmAudio) -> list[tuple[int, int]]:
    """Where people speak, in samples, by the Silero VAD that ships inside faster-whisper."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    spans = get_speech_timestamps(audio.samples, VadOptions(min_silence_duration_ms=300),
                                  sampling_rate=audio.sample_rate)
    return [(span["start"], span["end"]) for span in spans]


def dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return 20 * np.log10(max(rms, 1e-9))


def check_clip(audio: PcmAudio) -> CheckedClip:
    seconds = audio.duration_s
    if seconds < MIN_SECONDS:
        # Rounded down, or 2.96 s reads "3.0 s" beside "at least 3 seconds".
        raise InputError(f"That clip is {math.floor(seconds * 10) / 10:.1f} s; please record at "
                         f"least {MIN_SECONDS:.0f} seconds of yourself speaking.")
    if seconds > MAX_SECONDS:
        raise InputError(f"That clip is {seconds:.0f} s; please keep each one under "
                         f"{MAX_SECONDS:.0f} seconds.")
    if np.mean(np.abs(audio.samples) >= CLIPPED_LEVEL) > MAX_CLIPPED_FRACTION:
        raise InputError("That clip is distorted (too loud for the microphone). Please record "
                         "again a little further away.")
    spans = speech_spans(audio)
    speech = np.concatenate([audio.samples[a:b] for a, b in spans]) if spans else np.zeros(0)
    speech_seconds = speech.size / audio.sample_rate
    if speech_seconds < MIN_SPEECH_SECONDS:
        raise InputError("I couldn't hear enough speech in that clip. Please read a sentence or two "
                         "aloud in a quiet place.")
    level = dbfs(speech)
    if level < MIN_SPEECH_DBFS:
        raise InputError("That clip is very quiet. Please record again closer to the microphone.")
    gain = 10 ** ((TARGET_DBFS - level) / 20)
    peak = float(np.abs(audio.samples).max()) * gain
    if peak > 0.95:  # never let normalising create the clipping we just refused
        gain *= 0.95 / peak
    return CheckedClip(PcmAudio((audio.samples * gain).astype(np.float32), audio.sample_rate),
                       speech_seconds)


# Resemblyzer cosines: clips of one person ~0.85-0.95, different people ~0.5-0.75.
SAME_SPEAKER = 0.75


def check_one_speaker(embeddings: list) -> None:
    """Every clip must sound like the others: one registration, one person."""
    if len(embeddings) < 2:
        return
    vectors = np.array(embeddings)
    for index, vector in enumerate(vectors):
        others = np.delete(vectors, index, axis=0).mean(axis=0)
        similarity = float(vector @ others / (np.linalg.norm(others) + 1e-9))
        if similarity < SAME_SPEAKER:
            raise InputError(
                f"Clip {index + 1} doesn't sound like the same person as the others. Please "
                "record every clip yourself; say /voice train to start again.")
