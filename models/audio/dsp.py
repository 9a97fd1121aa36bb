"""Signal processing the voice stages share: resampling and pitch tracking.

Voice emotion reads pitch, the voice converter moves it, the speaker encoder and the tools
resample; one copy of each lives here so no stage borrows from another.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from scipy.signal import resample_poly

from core.turn import PcmAudio

FRAME_MS = 5.0
PITCH_HZ = (50.0, 500.0)
YIN_RATE = 16_000
YIN_WINDOW = 1024  # 64 ms: three periods of the lowest pitch
YIN_THRESHOLD = 0.1  # the first dip under this is the period (YIN's absolute threshold)
VOICED_BELOW = 0.45  # periodicity under which a frame is voiced; generous, as noise sounds worse


def to_rate(audio: PcmAudio, rate: int) -> np.ndarray:
    """The samples at `rate` Hz (polyphase resampling: exact, and cheap for speech lengths)."""
    if audio.sample_rate == rate:
        return audio.samples
    common = gcd(rate, audio.sample_rate)
    resampled = resample_poly(audio.samples, rate // common, audio.sample_rate // common)
    return resampled.astype(np.float32)


def resample_to(audio: PcmAudio, rate: int) -> PcmAudio:
    return audio if audio.sample_rate == rate else PcmAudio(to_rate(audio, rate), rate)


def estimate_f0(samples: np.ndarray, sample_rate: int, frames: int, typical_hz: float | None = None) -> np.ndarray:
    """F0 per 5 ms frame (0 where unvoiced), with YIN, in the octave nearest `typical_hz`.

    WORLD's own trackers (DIO, Harvest) halve the period on the low, creaky Piper voice in a
    large share of frames; YIN's first-dip rule does not. Without `typical_hz` the utterance's own
    clearly periodic frames set the octave.
    """
    signal = to_rate(PcmAudio(samples, sample_rate), YIN_RATE).astype(np.float64)
    hop = int(YIN_RATE * FRAME_MS / 1000)
    shortest, longest = int(YIN_RATE / PITCH_HZ[1]), int(YIN_RATE / PITCH_HZ[0])
    padded = np.pad(signal, (YIN_WINDOW // 2, YIN_WINDOW // 2 + hop * frames))
    windows = padded[np.arange(frames)[:, None] * hop + np.arange(YIN_WINDOW)[None, :]]
    windows = windows - windows.mean(axis=1, keepdims=True)
    span = YIN_WINDOW - longest
    # Difference function d(tau) = e(0) + e(tau) - 2 r(tau), with r by FFT.
    spectrum = np.fft.rfft(windows, 2 * YIN_WINDOW)
    head = np.fft.rfft(windows[:, :span], 2 * YIN_WINDOW)
    correlation = np.fft.irfft(spectrum * np.conj(head), 2 * YIN_WINDOW)[:, : longest + 1]
    energy = np.cumsum(np.pad(windows**2, ((0, 0), (1, 0))), axis=1)
    e0 = energy[:, span] - energy[:, 0]
    difference = e0[:, None] + (energy[:, span : span + longest + 1] - energy[:, : longest + 1]) - 2 * correlation
    lags = np.arange(1, longest + 1)
    normalised = difference[:, 1:] * lags / np.maximum(np.cumsum(difference[:, 1:], axis=1), 1e-12)
    band = normalised[:, shortest - 1 :]  # lags shortest..longest
    dips = np.zeros(band.shape, bool)
    dips[:, 1:-1] = (band[:, 1:-1] < band[:, :-2]) & (band[:, 1:-1] <= band[:, 2:])
    dips &= band < YIN_THRESHOLD
    index = np.where(dips.any(axis=1), dips.argmax(axis=1), band.argmin(axis=1))
    rows = np.arange(frames)
    periodicity = band[rows, index]
    # Parabolic interpolation between lags for sub-sample precision.
    inner = np.clip(index, 1, band.shape[1] - 2)
    left, mid, right = band[rows, inner - 1], band[rows, inner], band[rows, inner + 1]
    curvature = left - 2 * mid + right
    offset = np.where(np.abs(curvature) > 1e-9, 0.5 * (left - right) / np.where(curvature == 0, 1, curvature), 0.0)
    f0 = YIN_RATE / (inner + shortest + np.clip(offset, -1, 1))
    loud = np.sqrt(e0 / span) > 0.02 * np.sqrt(e0.max() / span)
    voiced = (periodicity < VOICED_BELOW) & loud
    if not voiced.any():
        return np.zeros(frames)
    return np.where(voiced, _fold_octaves(f0, periodicity, voiced, typical_hz), 0.0)


def _fold_octaves(f0: np.ndarray, periodicity: np.ndarray, voiced: np.ndarray,
                  typical_hz: float | None = None) -> np.ndarray:
    """Weakly periodic frames often lock onto a harmonic or subharmonic: bring each to the octave
    nearest the typical pitch, by default read from the utterance's clearly periodic frames.

    On a short utterance from Piper's joe those frames can all sit an octave up (4 of 240
    renderings here, one sentence): then only a pitch known from more speech sets it right.
    """
    if typical_hz:
        typical = np.log2(typical_hz)
    else:
        clear = voiced & (periodicity < YIN_THRESHOLD)
        typical = np.median(np.log2(f0[clear if clear.any() else voiced]))
    octaves = np.round(np.log2(f0) - typical)
    return f0 / 2.0**octaves
