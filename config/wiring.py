"""The one place that picks concrete backends and wires them into a Pipeline.

Models are heavy: `load_models` builds each distinct choice once per process and keeps it.
Storage is light and per data dir.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from config.settings import Settings
from core.pipeline import Pipeline, PipelineSettings, Stages
from core.stages import (
    FaceEmotionReader,
    ReplyGenerator,
    SpeechSynthesizer,
    TextEmotionReader,
    ToxicityChecker,
    Transcriber,
)
from models.audio import PyAvCodec
from models.rule_replies import RuleBasedReplies
from storage.blobs import AudioBlobs
from storage.db import make_engine, migrate, session_factory
from storage.turns import SqlHistory, SqlTurnStore

log = logging.getLogger(__name__)


def offline_environment(settings: Settings) -> None:
    """Nothing at run time may reach a model hub; caches live under the data dir."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HOME", str((settings.models_dir / "hf").resolve()))


@dataclass(frozen=True)
class ModelChoice:
    device: str
    models_dir: Path
    whisper_model_dir: Path | None
    whisper_beam_size: int
    text_encoder_dir: Path | None
    reply_backend: str
    reply_model_dir: Path | None
    reply_max_new_tokens: int
    reply_temperature: float
    tts_backend: str
    piper_voice: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelChoice:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__
                      if name != "models_dir"}, models_dir=settings.models_dir)


@dataclass(frozen=True)
class Models:
    transcriber: Transcriber
    text_emotion: TextEmotionReader
    face_emotion: FaceEmotionReader
    replier: ReplyGenerator
    toxicity: ToxicityChecker
    synthesizer: SpeechSynthesizer | None


_load_lock = threading.Lock()


def load_models(choice: ModelChoice) -> Models:
    with _load_lock:
        return _load_models(choice)


@cache
def _load_models(choice: ModelChoice) -> Models:
    from models import faces, local_llm, minilm, piper_tts, profanity, whisper

    log.info("loading models on %s", choice.device)
    whisper_dir = choice.whisper_model_dir or whisper.packaged_model_dir()
    transcriber = whisper.FasterWhisperTranscriber(
        whisper_dir,
        label="tiny.en" if choice.whisper_model_dir is None else whisper_dir.name,
        device=choice.device,
        beam_size=choice.whisper_beam_size,
    )
    encoder = minilm.SentenceEncoder(
        choice.text_encoder_dir or minilm.packaged_encoder_dir(), device=choice.device
    )
    text_emotion = minilm.TrainedEmotionReader(encoder, choice.models_dir)
    face_emotion = faces.MiniXceptionFaceReader(faces.packaged_fer_data())

    replier: ReplyGenerator
    if choice.reply_backend == "local":
        if choice.reply_model_dir is not None:
            model_dir, label = choice.reply_model_dir, choice.reply_model_dir.name
        else:
            label = "smollm2-135m-instruct"
            model_dir = local_llm.convert_gguf(local_llm.packaged_gguf(), choice.models_dir / label)
        replier = local_llm.LocalReplyGenerator(
            model_dir, label, device=choice.device,
            max_new_tokens=choice.reply_max_new_tokens, temperature=choice.reply_temperature,
        )
    else:
        replier = RuleBasedReplies()

    synthesizer = None
    if choice.tts_backend == "piper":
        synthesizer = piper_tts.PiperSynthesizer(
            choice.piper_voice or piper_tts.packaged_voice(), use_cuda=choice.device == "cuda"
        )
    log.info("models ready")
    return Models(transcriber, text_emotion, face_emotion, replier, profanity.ProfanityChecker(),
                  synthesizer)


def build_pipeline(settings: Settings) -> Pipeline:
    offline_environment(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    migrate(engine)
    sessions = session_factory(engine)
    models = load_models(ModelChoice.from_settings(settings))
    stages = Stages(
        codec=PyAvCodec(),
        transcriber=models.transcriber,
        text_emotion=models.text_emotion,
        face_emotion=models.face_emotion,
        voice_emotion=None,
        memory=SqlHistory(sessions),
        replier=models.replier,
        fallback=RuleBasedReplies(),
        toxicity=models.toxicity,
        synthesizer=models.synthesizer,
        store=SqlTurnStore(sessions, AudioBlobs(settings.audio_dir)),
    )
    return Pipeline(stages, pipeline_settings(settings))


def pipeline_settings(settings: Settings) -> PipelineSettings:
    return PipelineSettings(
        default_persona=settings.default_persona,
        fusion_weights=dict(settings.fusion_weights),
        max_audio_seconds=settings.max_audio_seconds,
        toxicity_threshold=settings.toxicity_threshold,
        reply_max_sentences=settings.reply_max_sentences,
        reply_max_chars=settings.reply_max_chars,
        expressiveness=settings.expressiveness,
    )
