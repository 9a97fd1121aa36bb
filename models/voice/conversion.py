"""Classical voice conversion with WORLD: a stock voice's speech, restyled toward a user's voice.

No neural cloning model ships offline, so a reply is spoken by the nearest stock voice and then
moved toward the user with WORLD (pyworld) analysis and resynthesis:

* pitch: log-F0 mean and spread matched to the user's clips;
* formants: the frequency axis of the spectral envelope warped by one factor;
* timbre: the remaining mean difference of the envelopes, one fixed equaliser for voiced frames
  and one for unvoiced ones (vowels and fricatives differ between voices in unrelated ways; one
  shared equaliser averaged them and was measured ~0.02 less similar on held-out replies),
  fitted on the stock voice speaking the user's own transcripts;
* tempo: the ratio of speaking times on those same words, applied by the synthesizer.

The warp is chosen by the speaker encoder: the factor whose converted rendering sounds closest to
the user's clips. Matching long-term spectra alone (kept as the fallback without an encoder) has
two near-equal minima, one on each side of 1 (e.g. 0.80 and 1.36 for a female eSpeak voice from
the male Piper one), and which one won flipped with the clips' length: that was why one speaker
closed 0.51 of the gap with short clips and 0.24 with longer ones.

Everything fitted is ~100 numbers (~1.3 kB of JSON), stored with the voice profile.
Per-frame mappings were measured from the Piper voice toward eSpeak NG speakers and left out:
cepstral variance matching and DTW-aligned ridge regression lowered similarity and raised WER;
a DTW-aligned cluster-wise cepstral offset (8-16 clusters) gained at most +0.01 similarity and
raised WER. Cost: ~0.2 s of conversion per second of reply on 2 cores, 8-13 s to fit.
"""

from __future__ import annotations

import numpy as np
import pyworld

from core.turn import PcmAudio
from models.audio.dsp import FRAME_MS, estimate_f0, resample_to

VERSION = 1
CEPSTRUM_DIMS = 40
# Voice notes arrive at 16 kHz: spectra are only compared, and corrected, below 8 kHz.
COMPARED_HZ = 8000.0
WARP_FACTORS = np.linspace(0.75, 1.45, 71)
# Searched with the encoder: a coarse pass over the range of adult voices, then a finer one.
WARP_GRID = (0.8, 0.92, 1.04, 1.16, 1.28, 1.4)
WARP_REFINEMENTS = (0.96, 1.04)
TEMPO_RANGE = (0.7, 1.4)  # beyond this, faster speech garbles and slower speech drags


class Analysis:
    """WORLD parameters of one recording: F0, spectral envelope and aperiodicity per 5 ms."""

    def __init__(self, audio: PcmAudio, typical_hz: float | None = None) -> None:
        signal = audio.samples.astype(np.float64)
        self.sample_rate = audio.sample_rate
        frames = _frames(audio)
        times = np.arange(frames) * FRAME_MS / 1000
        f0 = estimate_f0(signal, audio.sample_rate, frames, typical_hz)
        self.f0 = pyworld.stonemask(signal, f0, times, audio.sample_rate)
        self.envelope = pyworld.cheaptrick(signal, self.f0, times, audio.sample_rate)
        self.aperiodicity = pyworld.d4c(signal, self.f0, times, audio.sample_rate)

    def active_frames(self) -> np.ndarray:
        """Frames within 40 dB of the loud ones: speech, voiced or not."""
        level = np.log(self.envelope.sum(axis=1) + 1e-16)
        return level > np.percentile(level, 95) - 9.2

    def speech_frames(self, voiced: bool = True) -> np.ndarray:
        """Voiced (or unvoiced) speech frames: what the voice is judged on."""
        return self.active_frames() & ((self.f0 > 0) == voiced)


def _frames(audio: PcmAudio) -> int:
    return len(audio.samples) // int(audio.sample_rate * FRAME_MS / 1000) + 1


def analyse_speaker(recordings: list[PcmAudio]) -> list[Analysis]:
    """Each recording analysed in the octave of the speaker's pitch over all of them."""
    pitch = np.concatenate([estimate_f0(a.samples, a.sample_rate, _frames(a)) for a in recordings])
    typical_hz = float(np.median(pitch[pitch > 0])) if (pitch > 0).any() else None
    return [Analysis(audio, typical_hz) for audio in recordings]


def warp_frequencies(envelope: np.ndarray, factor: float) -> np.ndarray:
    """envelope'(f) = envelope(f / factor): a factor above 1 moves the formants up."""
    return np.ascontiguousarray(np.exp(_warp_log(np.log(envelope + 1e-16), factor)))


def _warp_log(log_spectra: np.ndarray, factor: float) -> np.ndarray:
    # Linear in the log domain, so warping a mean log spectrum equals the mean of warped ones.
    bins = log_spectra.shape[-1]
    source = np.clip(np.arange(bins) / factor, 0, bins - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    weight = source - low
    return log_spectra[..., low] * (1 - weight) + log_spectra[..., high] * weight


def _log_pitch(analyses: list[Analysis]) -> np.ndarray:
    return np.log(np.concatenate([a.f0[a.f0 > 0] for a in analyses]))


def _mean_log_spectrum(analyses: list[Analysis], voiced: bool = True) -> np.ndarray:
    frames = np.concatenate([a.envelope[a.speech_frames(voiced)] for a in analyses])
    if len(frames) < 20:  # hardly any: judge by every frame rather than by none
        frames = np.concatenate([a.envelope for a in analyses])
    return np.log(frames + 1e-16).mean(axis=0)


def _speech_seconds(analyses: list[Analysis]) -> float:
    # Voiced and unvoiced alike: counting voiced frames only made eSpeak voices, which voice far
    # more frames than Piper, look 1.4x slower than the same words' durations say.
    return sum(a.active_frames().sum() for a in analyses) * FRAME_MS / 1000


def fit(user_clips: list[PcmAudio], user_transcripts: list[str],
        stock_rendering: list[PcmAudio] | None, encoder=None, progress=None) -> dict:
    """Conversion statistics from the user's clips and the stock voice speaking their transcripts.

    Without `stock_rendering` only the user's side is stored, and each reply is measured against
    itself when converted: weaker, since a reply's words differ from the clips'. With a speaker
    `encoder` (as registration runs it), the formant warp is the one whose converted rendering
    sounds closest to the clips (8 trials, ~1 s each); without, the long-term spectra decide.
    """
    if len(user_clips) != len(user_transcripts):
        raise ValueError("one transcript per clip")
    rate = stock_rendering[0].sample_rate if stock_rendering else user_clips[0].sample_rate
    user = analyse_speaker([resample_to(clip, rate) for clip in user_clips])
    user_pitch = _log_pitch(user)
    stats: dict = {
        "version": VERSION,
        "sample_rate": rate,
        # Below the lower of the two Nyquist frequencies both voices have real content.
        "compared_hz": min(COMPARED_HZ, min(c.sample_rate for c in user_clips) / 2),
        "pitch": {"target": [float(user_pitch.mean()), float(user_pitch.std())]},
    }
    if stock_rendering is None:
        stats["target_spectrum"] = _coded(_mean_log_spectrum(user), rate, stats["compared_hz"])
        return stats
    stock = analyse_speaker([resample_to(audio, rate) for audio in stock_rendering])
    stock_pitch = _log_pitch(stock)
    stats["pitch"]["source"] = [float(stock_pitch.mean()), float(stock_pitch.std())]
    spectra = [(_mean_log_spectrum(user, voiced), _mean_log_spectrum(stock, voiced)) for voiced in (True, False)]
    if encoder is None:
        target, source = spectra[0]
        compared = _compared_bins(target.size, rate, stats["compared_hz"])
        warp = float(min(WARP_FACTORS, key=lambda f: _shape_error(target, _warp_log(source, f), compared)))
        stats.update(_spectral_stats(spectra, warp, stats))
    else:
        voice = encoder.embed_speaker(user_clips)
        trials = len(WARP_GRID) + len(WARP_REFINEMENTS)

        def closeness(warp: float) -> float:
            trial = {**stats, **_spectral_stats(spectra, warp, stats)}
            converted = [_convert(analysis, trial, 1.0, audio) for analysis, audio in zip(stock, stock_rendering)]
            if progress:  # `progress(what, done, total)`, as stock_voices.Progress
                progress("fitting the voice to yours", len(scores) + 1, trials)
            return float(np.dot(encoder.embed_speaker(converted), voice))

        scores: dict[float, float] = {}
        for warp in WARP_GRID:
            scores[warp] = closeness(warp)
        coarse = max(scores, key=scores.get)
        for scale in WARP_REFINEMENTS:
            scores[coarse * scale] = closeness(coarse * scale)
        warp = max(scores, key=scores.get)
        stats.update(_spectral_stats(spectra, warp, stats))
    tempo = _speech_seconds(stock) / max(_speech_seconds(user), 1e-3)
    stats["tempo"] = float(np.clip(tempo, *TEMPO_RANGE))
    return stats


def _spectral_stats(spectra: list[tuple[np.ndarray, np.ndarray]], warp: float, stats: dict) -> dict:
    """The warp, and the equalisers taking the warped stock spectra (voiced, unvoiced) to the user's."""
    coded = [_coded(target - _warp_log(source, warp), stats["sample_rate"], stats["compared_hz"])
             for target, source in spectra]
    return {"warp": round(warp, 4), "equaliser": coded[0], "unvoiced_equaliser": coded[1]}


def _compared_bins(bins: int, rate: int, compared_hz: float) -> int:
    return int(bins * min(1.0, compared_hz / (rate / 2)))


def _shape_error(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    """How unlike two log spectra are in shape, ignoring overall level."""
    difference = a[:bins] - b[:bins]
    return float(np.var(difference))


def _coded(log_spectrum: np.ndarray, rate: int, compared_hz: float) -> list[float]:
    """A log spectrum as mel-cepstral coefficients (WORLD's coding), flat above `compared_hz`."""
    bins = _compared_bins(log_spectrum.size, rate, compared_hz)
    held = log_spectrum.copy()
    held[bins:] = held[bins - 1]
    coded = pyworld.code_spectral_envelope(np.exp(held)[None, :], rate, CEPSTRUM_DIMS)
    return [round(float(value), 5) for value in coded[0]]


def _decoded(coefficients: list[float], rate: int) -> np.ndarray:
    coded = np.ascontiguousarray(np.array(coefficients, dtype=np.float64)[None, :])
    return np.log(pyworld.decode_spectral_envelope(coded, rate, pyworld.get_cheaptrick_fft_size(rate))[0])


def convert(audio: PcmAudio, stats: dict, pitch: float = 1.0) -> PcmAudio:
    """`audio` (the stock voice) restyled toward the user; `pitch` scales F0 on top, for emotion."""
    if audio.duration_s < FRAME_MS / 1000 * 4:  # too short to analyse: nothing was said
        return audio
    # The stock voice's pitch, measured over all the clips' renderings, sets the octave.
    source = stats["pitch"].get("source")
    typical_hz = float(np.exp(source[0])) if source else None
    return _convert(Analysis(resample_to(audio, stats["sample_rate"]), typical_hz), stats, pitch, audio)


def _convert(analysis: Analysis, stats: dict, pitch: float, original: PcmAudio) -> PcmAudio:
    rate = stats["sample_rate"]
    f0 = analysis.f0.copy()
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        source_mean, source_std = stats["pitch"].get("source") or (log_f0.mean(), log_f0.std())
        target_mean, target_std = stats["pitch"]["target"]
        f0[voiced] = pitch * np.exp((log_f0 - source_mean) / max(source_std, 1e-3) * target_std + target_mean)
    if "equaliser" in stats:
        envelope = warp_frequencies(analysis.envelope, stats["warp"])
        unvoiced = stats.get("unvoiced_equaliser", stats["equaliser"])
        envelope[voiced] *= np.exp(_decoded(stats["equaliser"], rate))
        envelope[~voiced] *= np.exp(_decoded(unvoiced, rate))
    else:
        # No stock rendering was fitted: the reply's own mean spectrum is the reference.
        own = _mean_log_spectrum([analysis])
        envelope = analysis.envelope * np.exp(_decoded(stats["target_spectrum"], rate) - own)
    return _synthesize(f0, envelope, analysis.aperiodicity, rate, original)


def shift_pitch(audio: PcmAudio, factor: float) -> PcmAudio:
    """The same voice and timing with F0 scaled by `factor`; formants stay where they are."""
    if audio.duration_s < FRAME_MS / 1000 * 4:
        return audio
    analysis = Analysis(audio)
    return _synthesize(analysis.f0 * factor, analysis.envelope, analysis.aperiodicity, audio.sample_rate, audio)


def _synthesize(f0, envelope, aperiodicity, rate: int, loudness_of: PcmAudio) -> PcmAudio:
    samples = pyworld.synthesize(f0, np.ascontiguousarray(envelope), aperiodicity, rate, FRAME_MS)
    # Keep the input's loudness, so a converted reply is as loud as an unconverted one.
    gain = np.sqrt(np.mean(loudness_of.samples**2) / max(np.mean(samples**2), 1e-12))
    return PcmAudio(np.clip(samples * gain, -1.0, 1.0).astype(np.float32), rate)
