"""Text to speech with coqui XTTS-v2: zero-shot cloning from the user's own recorded clips.

The weights are Coqui's XTTS-v2 under the non-commercial CPML: `heartline models fetch --tts xtts`
puts config.json, model.pth, vocab.json and speakers_xtts.pth in <model cache>/xtts-v2 on a
connected machine. Nothing is downloaded here. Install with the `xtts` extra.

torch and coqui are imported inside the class, so this module imports without them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import tempfile
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np

from core.turn import PcmAudio, VoiceProfile, VoiceStyle

LICENCE_MESSAGE = (
    "XTTS-v2 weights are licensed under the Coqui Public Model License (CPML, non-commercial use "
    "only: https://coqui.ai/cpml). Set COQUI_TOS_AGREED=1 in the environment to confirm you accept "
    "it, or use the Piper backend."
)
PAUSE_S = 0.3  # silence between sentences
# Cloning a voice costs ~1-2 CPU-seconds per clip (the speaker encoder): keep the latents of the
# last few voices. Keyed by each clip's path, size and mtime, so a re-recorded clip is re-read.
VOICE_CACHE_SIZE = 32


class XttsSynthesizer:
    """Speaks in the voice of `voice.clips` (WAV bytes, zero-shot); with no voice, in a stock XTTS-v2 speaker.

    `voice=None` uses `speaker` (default: the first name in the model's speakers_xtts.pth). A
    checkpoint without speakers_xtts.pth (fine-tuned or test models) can only clone, and raises
    ValueError when asked to speak without a voice profile.
    `style.rate` is XTTS's `speed`; `style.energy` scales the volume, capped at 1 as with Piper
    (the output is already at full scale); `style.pitch` has no XTTS control and is ignored.
    """

    name = "xtts-v2"

    def __init__(self, model_dir: Path | str, device: str = "cpu", language: str = "en",
                 speaker: str | None = None) -> None:
        if os.environ.get("COQUI_TOS_AGREED") != "1":
            raise RuntimeError(f"Refusing to load XTTS from {model_dir}: {LICENCE_MESSAGE}")
        model_dir = Path(model_dir)
        if not (model_dir / "model.pth").is_file() or not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir} has no XTTS model.pth and config.json")
        if importlib.util.find_spec("TTS") is None:
            raise ImportError("XTTS needs coqui-tts: pip install 'heartline[xtts]'")
        import torch

        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU")
        with coqui_importable():
            from TTS.api import TTS

            # A directory as model_path: the model loads model.pth, vocab.json and, if present,
            # speakers_xtts.pth from it. .to() moves every weight and buffer to the device.
            self._tts = TTS(model_path=str(model_dir), config_path=str(model_dir / "config.json"),
                            progress_bar=False).to(device)
        self._model = self._tts.synthesizer.tts_model
        self.sample_rate = int(self._tts.synthesizer.output_sample_rate)  # 24000 for XTTS
        self.languages: list[str] = list(self._model.config.languages)
        manager = self._model.speaker_manager  # None without speakers_xtts.pth
        self.speakers: list[str] = manager.speaker_names if manager is not None else []
        if speaker is not None and speaker not in self.speakers:
            raise ValueError(f"no stock speaker {speaker!r} in {model_dir}")
        self.speaker = speaker or (self.speakers[0] if self.speakers else None)
        self.language = language
        self._voices: OrderedDict[tuple, tuple] = OrderedDict()

    @property
    def language(self) -> str:
        return self._language

    @language.setter
    def language(self, value: str) -> None:
        if value not in self.languages:
            raise ValueError(f"XTTS does not speak {value!r}; it speaks {', '.join(self.languages)}")
        self._language = value

    def synthesize(self, text: str, style: VoiceStyle, voice: VoiceProfile | None = None) -> PcmAudio:
        gpt_cond_latent, speaker_embedding = self._conditioning(voice)
        config = self._model.config
        settings = {key: config[key] for key in ("temperature", "length_penalty", "repetition_penalty",
                                                 "top_k", "top_p")}
        pause = np.zeros(int(PAUSE_S * self.sample_rate), np.float32)
        parts = []
        # coqui's own sentence splitter (pysbd); XTTS takes at most ~250 characters at a time.
        for sentence in self._tts.synthesizer.split_into_sentences(text, self.language):
            out = self._model.inference(sentence, self.language, gpt_cond_latent, speaker_embedding,
                                        speed=style.rate, **settings)
            parts += [np.asarray(out["wav"], np.float32).reshape(-1), pause]
        samples = np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)
        samples = np.clip(samples * min(style.energy, 1.0), -1.0, 1.0)  # energy > 1 would clip
        return PcmAudio(samples.astype(np.float32), self.sample_rate)

    def _conditioning(self, voice: VoiceProfile | None):
        """(GPT conditioning latents, speaker embedding) for the stock speaker or the user's clips."""
        if voice is None:
            if self.speaker is None:
                raise ValueError("this XTTS checkpoint has no stock speakers (speakers_xtts.pth); "
                                 "a voice profile is required")
            stock = self._model.speaker_manager.speakers[self.speaker]
            return stock["gpt_cond_latent"], stock["speaker_embedding"]
        if not voice.clips:
            raise ValueError("the voice profile has no clips to clone from")
        key = tuple(hashlib.sha256(clip).hexdigest() for clip in voice.clips)
        if key not in self._voices:
            config = self._model.config
            # The model's own cloning path reads files (with torchaudio.load, which is soundfile
            # when the stand-in below is in use); the clips live in the database, so they are
            # written out for that one call and deleted straight after.
            with tempfile.TemporaryDirectory(prefix="heartline-voice-") as folder:
                paths = [Path(folder) / f"clip{i}.wav" for i in range(len(voice.clips))]
                for path, clip in zip(paths, voice.clips):
                    path.write_bytes(clip)
                self._voices[key] = self._model.get_conditioning_latents(
                    audio_path=[str(path) for path in paths],
                    max_ref_length=config.max_ref_len,
                    gpt_cond_len=config.gpt_cond_len,
                    gpt_cond_chunk_len=config.gpt_cond_chunk_len,
                    sound_norm_refs=config.sound_norm_refs,
                )
            if len(self._voices) > VOICE_CACHE_SIZE:
                self._voices.popitem(last=False)
        self._voices.move_to_end(key)
        return self._voices[key]


@contextlib.contextmanager
def coqui_importable():
    """Let coqui-tts import and load on a torch that has no working torchaudio.

    coqui-tts 0.28 refuses to import without `torchaudio`, and also `torchcodec` on torch >= 2.9.
    torchaudio's last release is 2.11, and its wheels link CUDA libraries: with the project's
    torch 2.13 it is either absent or fails to load. XTTS inference only needs three torchaudio
    calls, which `_torchaudio_standin` provides; coqui never calls torchcodec, only checks that
    it is there. The stand-ins are in sys.modules only while coqui is imported and the model
    built (coqui's modules keep their own reference), so nothing else in the process sees them.
    A torchaudio that does import (torch <= 2.11 with its matching torchaudio) is used as is.
    """
    added: list[str] = []
    try:
        import torchaudio  # noqa: F401
    except Exception:  # absent, or a CUDA build that fails to load (OSError, ImportError, ...)
        for name in [n for n in sys.modules if n == "torchaudio" or n.startswith("torchaudio.")]:
            del sys.modules[name]  # what a failed import of the real one left behind
        standin = _torchaudio_standin()
        for module in (standin, standin.functional, standin.transforms):
            sys.modules[module.__name__] = module
            added.append(module.__name__)
        if importlib.util.find_spec("torchcodec") is None:
            sys.modules["torchcodec"] = _module("torchcodec")
            added.append("torchcodec")
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def _module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # so find_spec() finds it
    return module


def _torchaudio_standin() -> types.ModuleType:
    """torchaudio.load, functional.resample and transforms.MelSpectrogram, as XTTS uses them.

    MelSpectrogram is torchaudio's computation (periodic window, centred reflect-padded STFT,
    |X|^power, HTK-scale triangular filters with optional Slaney area norm) with torchaudio's
    submodule and buffer names (`spectrogram.window`, `mel_scale.fb`), which real XTTS-v2
    checkpoints contain for the speaker encoder, so they load with strict=True.
    Reference audio is read with soundfile (the user's clips are WAV) and resampled with soxr
    on the CPU, then moved back to the tensor's device; XTTS resamples nothing else.
    """
    import soundfile
    import soxr
    import torch

    class Spectrogram(torch.nn.Module):
        def __init__(self, n_fft, win_length, hop_length, window_fn, power, normalized):
            super().__init__()
            self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
            self.power, self.normalized = power, normalized
            self.register_buffer("window", window_fn(win_length))

        def forward(self, wav):
            frames = wav.reshape(-1, wav.shape[-1])
            spec = torch.stft(frames, self.n_fft, self.hop_length, self.win_length, self.window,
                              center=True, pad_mode="reflect", onesided=True, return_complex=True)
            if self.normalized:
                spec = spec / self.window.pow(2).sum().sqrt()
            spec = spec.abs().pow(self.power)
            return spec.reshape(wav.shape[:-1] + spec.shape[-2:])

    class MelScale(torch.nn.Module):
        def __init__(self, n_mels, sample_rate, f_min, f_max, n_freqs, norm):
            super().__init__()
            hz_to_mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731 (HTK scale)
            mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
            f_pts = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
            slopes = f_pts[None, :] - torch.linspace(0, sample_rate // 2, n_freqs)[:, None]
            f_diff = f_pts[1:] - f_pts[:-1]
            down, up = -slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
            fb = torch.clamp(torch.min(down, up), min=0.0)  # (freqs, mels), as torchaudio
            if norm == "slaney":
                fb = fb * (2.0 / (f_pts[2:] - f_pts[:-2]))[None, :]
            self.register_buffer("fb", fb)

        def forward(self, spec):
            return torch.matmul(spec.transpose(-1, -2), self.fb).transpose(-1, -2)

    class MelSpectrogram(torch.nn.Module):
        def __init__(self, sample_rate=16000, n_fft=400, win_length=None, hop_length=None, f_min=0.0,
                     f_max=None, n_mels=128, window_fn=torch.hann_window, power=2.0, normalized=False,
                     norm=None, mel_scale="htk"):
            super().__init__()
            if mel_scale != "htk" or norm not in (None, "slaney"):
                raise NotImplementedError("the torchaudio stand-in has the HTK mel scale only")
            win_length = win_length or n_fft
            self.spectrogram = Spectrogram(n_fft, win_length, hop_length or win_length // 2, window_fn,
                                           power, normalized)
            self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max or sample_rate // 2,
                                      n_fft // 2 + 1, norm)

        def forward(self, wav):
            return self.mel_scale(self.spectrogram(wav))

    def resample(waveform, orig_freq, new_freq, **_):
        if orig_freq == new_freq:
            return waveform
        frames = waveform.detach().cpu().float().reshape(-1, waveform.shape[-1]).T.numpy()
        out = torch.from_numpy(np.ascontiguousarray(soxr.resample(frames, orig_freq, new_freq).T))
        return out.reshape(waveform.shape[:-1] + out.shape[-1:]).to(waveform.device, waveform.dtype)

    def load(path, *_, **__):
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(data.T.copy()), rate  # (channels, frames), like torchaudio

    torchaudio = _module("torchaudio")
    torchaudio.functional = _module("torchaudio.functional")
    torchaudio.transforms = _module("torchaudio.transforms")
    torchaudio.load = load
    torchaudio.functional.resample = resample
    torchaudio.transforms.MelSpectrogram = MelSpectrogram
    return torchaudio
