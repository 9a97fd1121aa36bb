"""The voice-emotion data set, built offline: stock voices speak neutrally, WORLD acts the emotion.

No labelled emotional speech ships in a registry package, so the project makes its own: eSpeak NG
voices (and Piper's joe, held out) read sentences from the text-emotion set in their neutral
delivery; WORLD analysis and resynthesis then impose each emotion's prosody, drawn at random from
the ranges in `RULES`. Every clip, neutral included, goes through the vocoder, so the vocoder
itself is no cue. Training and held-out sets share no sentence and no voice.

    python -m models.tools.voice_emotion_data build-data       # models/data/voice_emotions/train.json
    python -m models.tools.voice_emotion_data build-heldout DIR  # DIR/heldout.jsonl and WAV files

See models/data/voice_emotions/README.md for the sources of the rules and what they imply.
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np
import pyworld

from core.turn import PcmAudio, VoiceStyle
from models.emotion.prosody import FEATURES, RATE, features
from models.audio.dsp import FRAME_MS, resample_to
from models.voice.conversion import Analysis, warp_frequencies

TRAIN_DATA = Path(__file__).parents[1] / "data" / "voice_emotions" / "train.json"
SEED = 5
# Voices that sound like people (no robots, whispers or croaks); no voice is in both lists.
TRAIN_VOICES = tuple(f"espeak:{v}" for v in (
    "en-us", "en-gb-x-rp", "en-029", "en-us+m1", "en-us+m3", "en-us+m5", "en-us+m7", "en-us+f1",
    "en-us+f3", "en-us+f5", "en-us+Alicia", "en-us+Annie", "en-us+linda", "en-us+david",
    "en-us+paul", "en-us+steph"))
HELDOUT_VOICES = ("piper:joe-us", *(f"espeak:{v}" for v in (
    "en-gb-scotland", "en-us-nyc", "en-us+m2", "en-us+m6", "en-us+f2", "en-us+f4",
    "en-us+belinda", "en-us+john")))
SENTENCES = {"train": 30, "heldout": 12}

# Per emotion, the range each change is drawn from (uniformly, per clip). Directions follow the
# reviews in the README; the sizes are the project's own choice, overlapping on purpose.
#   pitch: F0 level shift, semitones       range: the voice's F0 spread around the median, times
#   slope: F0 drift over the utterance, st  rate: speaking tempo, times
#   breaks: chance a gap between words becomes a pause   gain: level, dB
#   dynamics: loudness contrast, times      tilt: spectral slope about 1 kHz, dB per octave
RULES: dict[str, dict[str, tuple[float, float]]] = {
    "neutral": {"pitch": (-1, 1), "range": (0.85, 1.15), "slope": (-2, 0), "rate": (0.92, 1.08),
                "breaks": (0, 0.1), "gain": (-1, 1), "dynamics": (0.9, 1.1), "tilt": (-1, 1)},
    "happy": {"pitch": (2, 5), "range": (1.3, 1.8), "slope": (0, 3), "rate": (1.0, 1.15),
              "breaks": (0, 0.08), "gain": (1, 4), "dynamics": (1.0, 1.2), "tilt": (0, 2)},
    "angry": {"pitch": (1.5, 4.5), "range": (1.1, 1.5), "slope": (-4, -1), "rate": (1.08, 1.25),
              "breaks": (0, 0.05), "gain": (4, 8), "dynamics": (1.2, 1.5), "tilt": (2, 4.5)},
    "sad": {"pitch": (-3, -0.5), "range": (0.45, 0.75), "slope": (-3, -1), "rate": (0.75, 0.9),
            "breaks": (0.15, 0.4), "gain": (-8, -3), "dynamics": (0.6, 0.85), "tilt": (-4, -1.5)},
}
# What varies between speakers and recordings whatever the emotion. eSpeak NG reads with a
# narrower pitch spread (SD 1.5-2 semitones) than people do; each clip is first given a plain
# spread drawn from SPREAD_ST (Piper's joe, trained on a human reader, measures 2.5).
SPREAD_ST = (2.0, 3.5)
WARP = (0.9, 1.12)  # vocal tract length
CHANNEL_TILT = (-1.5, 1.5)  # voice and microphone colour, dB per octave
RECORDING_DB = (-6.0, 6.0)
GAP_FRAMES = 5  # 25 ms of silence: a break between words a pause can go into
PAUSE_MS = (250.0, 600.0)
SPEECH_DBFS = -26.0
NOISE_SNR_DB = (30.0, 50.0)


def sentences(split: str) -> list[str]:
    """Plain sentences of 8-16 words from the text-emotion set's split of the same name."""
    text = resources.files("models").joinpath(f"data/text_emotions/{split}.jsonl").read_text("utf-8")
    rows = [json.loads(line)["text"] for line in text.splitlines() if line.strip()]
    plain = [t for t in rows if re.fullmatch(r"[A-Z][A-Za-z ,.'?!]+", t)
             and not re.search(r"\b[A-Z]{2,}\b", t) and 8 <= len(t.split()) <= 16]
    step = len(plain) / SENTENCES[split]
    return [plain[int(i * step)] for i in range(SENTENCES[split])]


def express(clip: Analysis, emotion: str, rng: np.random.Generator) -> PcmAudio:
    """The neutral clip resynthesized with one random draw of `emotion`'s prosody."""
    draw = {name: rng.uniform(*span) for name, span in RULES[emotion].items()}
    f0, envelope, aperiodicity = clip.f0.copy(), clip.envelope.copy(), clip.aperiodicity
    voiced = f0 > 0
    if voiced.any():
        tones = 12 * np.log2(f0[voiced])
        centre = np.median(tones)
        position = np.linspace(-0.5, 0.5, len(f0))[voiced]
        spread = rng.uniform(*SPREAD_ST) / max(tones.std(), 0.5) * draw["range"]
        tones = centre + draw["pitch"] + (tones - centre) * spread + draw["slope"] * position
        f0[voiced] = 2 ** (tones / 12)
    level = 10 * np.log10(envelope.sum(axis=1) + 1e-16)
    silent = level < np.percentile(level, 95) - 30
    speech_level = level[~silent].mean()
    contrast = np.where(silent, 0.0, (level - speech_level) * (draw["dynamics"] - 1))
    hz = np.linspace(0, clip.sample_rate / 2, envelope.shape[1])
    tilt = (draw["tilt"] + rng.uniform(*CHANNEL_TILT)) * np.log2(np.maximum(hz, 125) / 1000)
    envelope = warp_frequencies(envelope, rng.uniform(*WARP))
    envelope *= 10 ** ((contrast[:, None] + tilt[None, :]) / 10)
    # Tempo: every frame lasts 1/rate as long; some gaps between words grow into pauses.
    lasts = np.full(len(f0), 1 / draw["rate"])
    edges = np.diff(np.concatenate([[0], silent.astype(int), [0]]))
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        inside = 0 < start and end < len(f0)
        if inside and end - start >= GAP_FRAMES and rng.random() < draw["breaks"]:
            lasts[end - 1] += rng.uniform(*PAUSE_MS) / FRAME_MS
    ends = np.cumsum(lasts)
    source = np.minimum(np.searchsorted(ends, np.arange(int(ends[-1])) + 0.5), len(f0) - 1)
    samples = pyworld.synthesize(f0[source], np.ascontiguousarray(envelope[source]),
                                 np.ascontiguousarray(aperiodicity[source]), clip.sample_rate, FRAME_MS)
    return _recorded(samples, draw["gain"], clip.sample_rate, rng)


def _recorded(samples: np.ndarray, gain_db: float, rate: int, rng: np.random.Generator) -> PcmAudio:
    """At the emotion's level give or take the microphone's, with a little background noise."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-16)
    speech_db = 10 * np.log10(np.mean(10 ** (level[level > level.max() - 30] / 10)))
    target = SPEECH_DBFS + gain_db + rng.uniform(*RECORDING_DB)
    scaled = samples * 10 ** ((target - speech_db) / 20)
    noise_db = target - rng.uniform(*NOISE_SNR_DB)
    scaled += rng.normal(0, 10 ** (noise_db / 20), len(scaled))
    return PcmAudio(np.clip(scaled, -1, 1).astype(np.float32), rate)


def _renderings(job: tuple[str, int, str]) -> list[tuple[str, PcmAudio]]:
    """One voice speaking one sentence, once in each emotion."""
    from models.voice.stock_voices import load_voice

    voice, index, text = job
    rng = np.random.default_rng([SEED, sum(map(ord, voice)), index])
    neutral = resample_to(load_voice(voice).synthesize(text, VoiceStyle()), RATE)
    clip = Analysis(neutral)
    return [(emotion, express(clip, emotion, rng)) for emotion in RULES]


def _jobs(voices: tuple[str, ...], split: str) -> list[tuple[str, int, str]]:
    return [(voice, i, text) for voice in voices for i, text in enumerate(sentences(split))]


def _feature_rows(job: tuple[str, int, str]) -> list[list]:
    voice, index, _ = job
    rows = []
    for emotion, audio in _renderings(job):
        row = features(audio)
        if row is not None:
            rows.append([voice, index, emotion, *(float(f"{value:.5g}") for value in row)])
    return rows


def build_data(path: Path = TRAIN_DATA, workers: int = 2) -> int:
    """Features of every training clip (the audio itself is not kept): one line per clip."""
    with ProcessPoolExecutor(workers) as pool:
        rows = [row for rows in pool.map(_feature_rows, _jobs(TRAIN_VOICES, "train")) for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(row, separators=(",", ":")) for row in rows)
    path.write_text(f'{{"columns": {json.dumps(["voice", "sentence", "label", *FEATURES])},\n'
                    f'"rows": [\n{lines}\n]}}\n')
    return len(rows)


def build_heldout(folder: Path, workers: int = 2, voices: tuple[str, ...] = HELDOUT_VOICES) -> Path:
    """The held-out clips as WAV files and a JSONL of {audio, labels, voice} beside them."""
    from models.audio.codec import PyAvCodec

    codec, lines = PyAvCodec(), []
    folder.mkdir(parents=True, exist_ok=True)
    jobs = _jobs(voices, "heldout")
    with ProcessPoolExecutor(workers) as pool:
        for (voice, index, _), renderings in zip(jobs, pool.map(_renderings, jobs)):
            for emotion, audio in renderings:
                name = f"{re.sub(r'[^a-z0-9]+', '-', voice.lower())}-{index:02d}-{emotion}.wav"
                (folder / name).write_bytes(codec.encode_wav(audio))
                lines.append(json.dumps({"audio": name, "labels": [emotion], "voice": voice}))
    listing = folder / "heldout.jsonl"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def main(argv: list[str]) -> int:
    if argv[:1] == ["build-data"]:
        print(f"{build_data()} rows in {TRAIN_DATA}")
    elif argv[:1] == ["build-heldout"] and len(argv) == 2:
        print(f"held-out set in {build_heldout(Path(argv[1]))}")
    else:
        print(__doc__.split("\n\n")[-2], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
