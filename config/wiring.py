"""The one place that picks concrete backends and wires them into a Pipeline.

Models are heavy: each loader below is cached on exactly the settings it depends on, so a
process loads each model once however many pipelines or commands use it. Storage is light
and per data dir.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from core.pipeline import Pipeline, PipelineSettings, Stages
from core.reply_checks import ReplyJudge
from core.stages import (
    FaceEmotionReader,
    LanguageIdentifier,
    MemoryStore,
    ReplyGenerator,
    SentenceEncoder,
    SpeechSynthesizer,
    TextEmotionReader,
    ToxicityChecker,
    Transcriber,
    VoiceEmotionReader,
)
from models.audio.codec import PyAvCodec
from models.reply.rules import RuleBasedReplies
from storage.db import make_engine, migrate, session_factory
from storage.outbox import Outbox
from storage.turns import SqlHistory, SqlTurnStore
from storage.voices import VoiceProfileStore

if TYPE_CHECKING:
    from bots.chat import Chat
    from bots.run import Door

log = logging.getLogger(__name__)

# One model load at a time: two threads asking for the same model must not load it twice.
_loading = threading.RLock()
_opening = threading.Lock()


def offline_environment(settings: Settings) -> None:
    """Nothing at run time may reach a model hub; caches live under the data dir."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HOME", str((settings.models_dir / "hf").resolve()))


def transcriber(settings: Settings) -> Transcriber:
    from models.speech import whisper

    model_dir, label = whisper.resolve_model(settings.whisper_model, settings.models_dir)
    with _loading:
        return _transcriber(model_dir, label, settings.device, settings.whisper_beam_size)


@cache
def _transcriber(model_dir: Path, label: str, device: str, beam_size: int) -> Transcriber:
    from models.speech.whisper import FasterWhisperTranscriber

    return FasterWhisperTranscriber(model_dir, label, device=device, beam_size=beam_size)


def text_emotion_reader(settings: Settings) -> TextEmotionReader:
    with _loading:
        if settings.text_emotion_backend == "goemotions":
            return _goemotions(settings.text_emotion_model_dir or settings.models_dir / "goemotions",
                               settings.device)
        return _text_emotion(settings.text_encoder_dir, settings.device, settings.models_dir,
                             settings.text_emotion_model_dir)


@cache
def _goemotions(model_dir: Path, device: str) -> TextEmotionReader:
    from models.emotion.goemotions import SequenceClassifierEmotionReader

    return SequenceClassifierEmotionReader(model_dir, device=device)


def face_emotion_reader(settings: Settings) -> FaceEmotionReader:
    with _loading:
        if settings.face_backend == "deepface":
            return _deepface(settings.models_dir / "deepface")
        return _face_emotion(settings.face_model_dir)


@cache
def _deepface(home: Path) -> FaceEmotionReader:
    from models.emotion.deepface_backend import DeepFaceReader

    return DeepFaceReader(home)


def toxicity_checker(settings: Settings) -> ToxicityChecker:
    with _loading:
        if settings.toxicity_backend == "detoxify":
            return _detoxify(settings.models_dir / f"detoxify-{settings.detoxify_model}", settings.device)
        return _toxicity()


@cache
def _detoxify(model_dir: Path, device: str) -> ToxicityChecker:
    from models.safety.detoxify_backend import DetoxifyChecker

    return DetoxifyChecker(model_dir, device=device)


@cache
def _sentence_encoder(model_dir: Path | None, device: str):
    from models.emotion.minilm import SentenceEncoder, packaged_encoder_dir

    return SentenceEncoder(model_dir or packaged_encoder_dir(), device=device)


@cache
def _text_emotion(encoder_dir: Path | None, device: str, models_dir: Path,
                  trained_dir: Path | None) -> TextEmotionReader:
    from models.emotion.minilm import TrainedEmotionReader

    encoder = _sentence_encoder(encoder_dir, device)
    if trained_dir is not None:  # a head from `heartline train text-emotion`
        return TrainedEmotionReader.trained(encoder, trained_dir)
    return TrainedEmotionReader.packaged(encoder, models_dir)


def voice_emotion_reader(settings: Settings) -> VoiceEmotionReader | None:
    if settings.voice_emotion_backend == "none":
        return None
    with _loading:
        return _voice_emotion(settings.voice_emotion_model_dir)


@cache
def _voice_emotion(model_dir: Path | None) -> VoiceEmotionReader:
    from models.emotion.voice import ProsodyEmotionReader

    return ProsodyEmotionReader(model_dir)


@cache
def _face_emotion(trained_dir: Path | None) -> FaceEmotionReader:
    from models.emotion.faces import MiniXceptionFaceReader, packaged_fer_data

    return MiniXceptionFaceReader(packaged_fer_data(), trained_dir)


def replier(settings: Settings) -> ReplyGenerator:
    s = settings
    if s.reply_backend == "api":
        if not (s.reply_api_base_url and s.reply_api_model):
            raise ValueError("reply_backend=api needs HEARTLINE_REPLY_API_BASE_URL and "
                             "HEARTLINE_REPLY_API_MODEL")
        key = s.reply_api_key.get_secret_value() if s.reply_api_key else ""
        return _api_replier(s.reply_api_base_url, key, s.reply_api_model, s.reply_api_timeout_s,
                            s.reply_api_retries, s.reply_max_new_tokens, s.reply_temperature)
    with _loading:
        return _replier(s.reply_backend, s.reply_model_dir, s.reply_adapter_dir, s.models_dir,
                        s.device, s.reply_runtime, s.reply_max_new_tokens, s.reply_temperature,
                        s.reply_seed)


@cache
def _api_replier(base_url: str, key: str, model: str, timeout_s: float, retries: int,
                 max_tokens: int, temperature: float) -> ReplyGenerator:
    from models.reply.openai_chat import OpenAIChatReplies

    return OpenAIChatReplies(base_url, key, model, timeout_s=timeout_s, retries=retries,
                             max_tokens=max_tokens, temperature=temperature)


@cache
def _replier(backend: str, model_dir: Path | None, adapter_dir: Path | str | None, models_dir: Path,
             device: str, runtime: str, max_new_tokens: int, temperature: float,
             seed: int | None) -> ReplyGenerator:
    if backend == "rules":
        return RuleBasedReplies()
    from models.reply import local_llm

    label = model_dir.name if model_dir is not None else local_llm.SMOLLM2_LABEL
    if adapter_dir is None and model_dir is None:
        adapter_dir = local_llm.SHIPPED_ADAPTER  # trained for the packaged model only
    adapter = None if adapter_dir in (None, "none") else Path(adapter_dir)
    model_dir = model_dir or packaged_reply_model(models_dir)
    if runtime == "onnx" or (runtime == "auto" and device == "cpu" and not local_llm.is_seq2seq(model_dir)):
        from models.reply import onnx_llm

        if adapter is not None:
            label += f"+lora:{adapter.name}"
        digest = onnx_llm.model_digest(model_dir, adapter)
        target = models_dir / "reply-onnx" / f"{label.replace(':', '-')}-{digest}"
        return onnx_llm.OnnxReplyGenerator(onnx_llm.build(model_dir, adapter, target), label,
                                           max_new_tokens=max_new_tokens, temperature=temperature,
                                           seed=seed)
    return local_llm.LocalReplyGenerator(model_dir, label, device=device, max_new_tokens=max_new_tokens,
                                         temperature=temperature, adapter_dir=adapter)


def packaged_reply_model(models_dir: Path) -> Path:
    """SmolLM2-135M-Instruct from its wheel, as a transformers directory (converted once)."""
    from models.reply import local_llm

    with _loading:
        return local_llm.convert_gguf(local_llm.packaged_gguf(), models_dir / local_llm.SMOLLM2_LABEL)


def language_identifier(settings: Settings) -> LanguageIdentifier:
    with _loading:
        return _language_identifier()


@cache
def _language_identifier() -> LanguageIdentifier:
    from models.reply.language import FastTextLanguageIdentifier

    return FastTextLanguageIdentifier()


def sentence_encoder(settings: Settings) -> SentenceEncoder:
    with _loading:
        return _sentence_encoder(settings.text_encoder_dir, settings.device)


@cache
def _toxicity() -> ToxicityChecker:
    from models.safety.profanity import ProfanityChecker

    return ProfanityChecker()


def synthesizer(settings: Settings) -> SpeechSynthesizer | None:
    s = settings
    if s.tts_backend == "none":
        return None
    xtts_dir = s.models_dir / "xtts-v2"
    use_xtts = s.voice_cloning == "xtts" or (
        s.voice_cloning == "auto" and (xtts_dir / "model.pth").is_file()
        and os.environ.get("COQUI_TOS_AGREED") == "1")
    with _loading:
        return _reply_voice(s.piper_voice, s.device, xtts_dir if use_xtts else None)


@cache
def _reply_voice(piper_voice: Path | None, device: str, xtts_dir: Path | None) -> SpeechSynthesizer:
    from models.voice.piper import PiperSynthesizer
    from models.voice.reply_voice import ReplyVoice
    from models.voice.stock_voices import DEFAULT_VOICE, load_voice

    cloner = None
    if xtts_dir is not None:
        from models.voice.xtts import XttsSynthesizer

        cloner = XttsSynthesizer(xtts_dir, device=device)
    # The packaged voice is also the converter's stock voice: one loaded copy serves both.
    default = PiperSynthesizer(piper_voice) if piper_voice else load_voice(DEFAULT_VOICE)
    return ReplyVoice(default, cloner)


def memory_store(settings: Settings, sessions: sessionmaker[Session]) -> MemoryStore:
    from storage.memory import ChromaMemory, embedding_function

    with _loading:
        encoder = _sentence_encoder(settings.text_encoder_dir, settings.device)
        client = _chroma(str((settings.data_dir / "memory").resolve()), settings.chroma_url)
    return ChromaMemory(client, embedding_function(encoder.encode, encoder.name), SqlHistory(sessions))


@cache
def _chroma(path: str, url: str | None):
    from storage.memory import open_chroma

    return open_chroma(path=path, url=url)


def speaker_encoder(settings: Settings):
    with _loading:
        return _on_device(settings, "speaker", lambda on: _speaker_encoder(on.device))


@cache
def _speaker_encoder(device: str):
    from models.voice.speaker import SpeakerEncoder

    return SpeakerEncoder(device)


@dataclass(frozen=True)
class Storage:
    sessions: sessionmaker[Session]


def open_storage(settings: Settings) -> Storage:
    """The database, migrated to the current schema, once per process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _opening:  # the web thread and the worker thread may both open it first
        return _storage(settings.sqlalchemy_url)


@cache
def _storage(url: str) -> Storage:
    engine = make_engine(url)
    migrate(engine)
    return Storage(session_factory(engine))


@contextmanager
def _first_run_lock(models_dir: Path) -> Iterator[None]:
    """Processes loading models take turns: on a new machine the first one builds the caches
    (the text-emotion head, the converted reply model), the others then load them. Unserialised,
    two workers started together wrote the same cache files and one of them died."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / ".loading.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def outbox(settings: Settings) -> Outbox:
    return Outbox(open_storage(settings).sessions)


def chat(settings: Settings) -> Chat:
    """The layer every front door shares, on this bot process's queue and stores."""
    from bots.chat import Chat
    from storage.gate import Gate
    from storage.journal import JobJournal
    from storage.moderation import Moderation
    from storage.users import UserStore
    from workers.queues import EmbeddedQueue, make_queue

    storage = open_storage(settings)
    queue = make_queue(settings, JobJournal(storage.sessions))
    if isinstance(queue, EmbeddedQueue):
        from workers import jobs

        jobs.configure(settings)  # its jobs run here, with this process's settings
        queue.warm_up()  # load the models now, so the first message does not wait for them
    # Shared by every bot process through Redis when there is one; one process needs no more.
    gate = Gate(settings.redis_url or "memory://", settings.max_messages_per_minute)
    return Chat(settings, queue, UserStore(storage.sessions), VoiceProfileStore(storage.sessions),
                Outbox(storage.sessions), gate, Moderation(storage.sessions), quotas(settings))


def quotas(settings: Settings):
    from storage.quotas import DailyQuota, Quotas

    return Quotas(open_storage(settings).sessions, DailyQuota(
        settings.daily_turns, settings.daily_voice_seconds, settings.daily_voice_registrations))


def doors(settings: Settings, chat: Chat) -> list[Door]:
    """Every front door whose configuration is present; the web chat when there is none; the
    admin page beside the platforms when an admin token is set."""
    from bots.web.server import WebChat

    found = []
    if settings.telegram_bot_token is not None:
        from bots.telegram import make_telegram_door

        found.append(make_telegram_door(settings, chat))
    if settings.discord_bot_token is not None:
        from bots.discord_door import DiscordDoor

        found.append(DiscordDoor(settings, chat))
    if found and settings.admin_token is not None:
        found.append(WebChat(settings, chat, chat_page=False))
    return found or [WebChat(settings, chat)]


def build_pipeline(settings: Settings) -> Pipeline:
    offline_environment(settings)
    storage = open_storage(settings)
    sessions = storage.sessions
    s = settings
    with _loading, _first_run_lock(settings.models_dir):
        log.info("loading models on %s", s.device)
        text_emotion = _on_device(s, "text_emotion", text_emotion_reader)
        stages = Stages(
            codec=PyAvCodec(),
            transcriber=_on_device(s, "stt", transcriber),
            text_emotion=text_emotion,
            face_emotion=face_emotion_reader(s),
            voice_emotion=voice_emotion_reader(s),
            memory=_on_device(s, "memory", lambda on: memory_store(on, sessions)),
            replier=_on_device(s, "reply", replier),
            fallback=RuleBasedReplies(),
            toxicity=_on_device(s, "toxicity", toxicity_checker),
            synthesizer=_on_device(s, "tts", synthesizer) if s.tts_backend != "none" else None,
            store=SqlTurnStore(sessions),
            voices=VoiceProfileStore(sessions),
            languages=language_identifier(s),
            judge=ReplyJudge(text_emotion, _on_device(s, "embeddings", sentence_encoder), language_identifier(s)),
        )
        log.info("models ready")
    return Pipeline(stages, pipeline_settings(settings))


def _on_device(settings: Settings, stage: str, build: Callable[[Settings], Any]):
    """`build(settings)` on settings.device; on a GPU, ready to go on on the CPU when CUDA runs
    out of memory (models.device)."""
    if not settings.device.startswith("cuda"):
        return build(settings)
    from models.device import CpuFallback

    return CpuFallback(stage, lambda device: build(settings.model_copy(update={"device": device})),
                       settings.device)


def pipeline_settings(settings: Settings) -> PipelineSettings:
    return PipelineSettings(
        default_persona=settings.default_persona,
        fusion_weights=dict(settings.fusion_weights),
        max_audio_seconds=settings.max_audio_seconds,
        max_text_chars=settings.max_text_chars,
        toxicity_threshold=settings.toxicity_threshold,
        reply_max_sentences=settings.reply_max_sentences,
        reply_max_chars=settings.reply_max_chars,
        reply_candidates=settings.reply_candidates,
        expressiveness=settings.expressiveness,
        stage_timeout_s=settings.stage_timeout_s,
    )
