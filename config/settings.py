"""Typed settings from `HEARTLINE_*` environment variables and an optional TOML file.

Precedence: environment, then the TOML file (`HEARTLINE_CONFIG_FILE`, else `config/heartline.toml`
if present), then the defaults below.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_TOML = Path(__file__).parent / "heartline.toml"


def _toml_file() -> Path | None:
    path = Path(os.environ["HEARTLINE_CONFIG_FILE"]) if os.environ.get("HEARTLINE_CONFIG_FILE") else DEFAULT_TOML
    return path if path.is_file() else None


class Settings(BaseSettings):
    # A misspelt key in the config file is an error, not a setting silently left at its default.
    model_config = SettingsConfigDict(env_prefix="HEARTLINE_", extra="forbid")

    # Where everything the bot keeps lives: database, audio, memory, model cache.
    data_dir: Path = Path("data")
    database_url: str | None = Field(default=None, description="default: SQLite file in data_dir")
    redis_url: str | None = Field(default=None, description="unset: embedded in-process queue")
    # A Chroma server for semantic memory (needed with more than one worker); unset: a Chroma
    # database in data_dir/memory, opened by the worker only.
    chroma_url: str | None = None
    # The RQ queue bots put jobs on and workers take them from.
    queue_name: str = "heartline"
    # Set, turns answered in a cloned (XTTS) voice go to this queue, which GPU workers take
    # first (`heartline worker --gpu`); unset, every job shares queue_name.
    gpu_queue_name: str | None = None
    # A job running longer is stopped; a failed job is tried again job_retries times, after
    # these intervals, and its result kept result_ttl_s.
    job_timeout_s: int = 600
    # One backend call (transcribing, replying, speaking...) given up on after this: the turn
    # goes on without that stage, e.g. a text reply when speech synthesis hangs.
    stage_timeout_s: float = 120.0
    job_retries: int = 2
    job_retry_intervals_s: list[int] = [5, 30]
    result_ttl_s: int = 3600
    # A message that waited longer than this for a worker is answered "please send it again"
    # instead: the user has moved on, and a backlog must not keep working for stale questions.
    answer_within_s: int = 900
    # Sent answers stay this long in the outbox (a redelivered message finds its answer there).
    outbox_keep_s: int = 86400
    # Tries to deliver one answer to a platform before it is given up on (and logged).
    send_attempts: int = 5
    # With this many messages waiting for a worker, a new one is told to try again later: the
    # queue must not grow past what the workers can answer while it still matters.
    max_waiting_jobs: int = 100

    # The web chat (with no bot token) and the admin page (with admin_token) listen here.
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # /healthz, /readyz and Prometheus /metrics of this process; unset, not served. Every
    # process needs a port of its own (`heartline worker --metrics-port` for each worker).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HEARTLINE_TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN")
    )
    discord_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HEARTLINE_DISCORD_BOT_TOKEN", "DISCORD_BOT_TOKEN")
    )

    # python-telegram-bot or aiogram: the same bot either way.
    telegram_library: Literal["ptb", "aiogram"] = "ptb"
    # A self-hosted Bot API server, e.g. http://localhost:8081 (default: Telegram's).
    telegram_api_url: str | None = None
    # Webhook mode when set (the public HTTPS URL Telegram posts to); long polling otherwise.
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    # Where the webhook server listens (behind the HTTPS proxy telegram_webhook_url names).
    telegram_webhook_host: str = "0.0.0.0"
    telegram_webhook_port: int = 8443
    # Another Discord REST API root and gateway (a proxy, or the tests' fake); default: Discord's.
    discord_api_url: str | None = None
    discord_gateway_url: str | None = None

    # Who may talk to the bot: "platform:id" of users or chats; empty lists let everyone in.
    allowed_users: list[str] = []
    allowed_chats: list[str] = []
    # Who may use /admin: "platform:id" of users (the web admin page asks for admin_token).
    admins: list[str] = []
    admin_token: SecretStr | None = None
    # Moderation: this many warnings mute a user for warn_mute_hours (each one after, again);
    # a message flagged as a threat mutes its sender for threat_mute_hours (0: only flag it).
    warn_limit: int = 3
    warn_mute_hours: float = 24.0
    threat_mute_hours: float = 24.0
    # In groups and servers, answer only when mentioned or replied to ("mention"), or always.
    group_replies: Literal["mention", "always"] = "mention"
    # How a voice reply carries its words: as the caption, as a separate message, or not at all.
    reply_text: Literal["caption", "message", "none"] = "caption"
    # Each user's rate (an admin may set another per user with /admin limits).
    max_messages_per_minute: int = 12
    # Daily quotas per user, counted per UTC day by every process (0: none). Past the voice
    # quota replies come in writing; past the others the user is told when to come back.
    daily_turns: int = 300
    daily_voice_seconds: int = 1800
    daily_voice_registrations: int = 3
    # Longer messages are refused with a request to send them in parts (Telegram's own cap is 4096).
    max_text_chars: int = 4000
    # /voice train waits this long for clips and /voice done; then voice notes are turns again.
    voice_training_minutes: int = 30

    # The role for a user who has not chosen one with /persona.
    default_persona: Literal["assistant", "friend", "tutor"] = "friend"
    # Longer voice notes and larger files are refused with a message saying so.
    max_audio_seconds: float = 300.0
    max_upload_bytes: int = 20 * 1024 * 1024
    # How much each reader's emotion counts when the three are fused.
    fusion_weights: dict[str, float] = {"text": 1.0, "image": 0.8, "voice": 0.6}
    # A toxicity score from here up flags the user's words, or blocks a reply.
    toxicity_threshold: float = 0.5

    # "cpu", "cuda" or "cuda:N" (the Nth GPU), or "auto": a GPU when torch sees one.
    device: str = "cpu"
    model_cache_dir: Path | None = Field(default=None, description="default: data_dir/models")
    whisper_model: str = Field(
        default="tiny.en",
        description="tiny.en or base (packaged), a CTranslate2 Whisper directory, or a size "
        "(small, medium, large-v3) fetched with `heartline models fetch`",
    )
    # Wider beams transcribe a little better and more slowly (1: greedy).
    whisper_beam_size: int = 5
    text_encoder_dir: Path | None = Field(default=None, description="default: packaged MiniLM")
    # Who writes replies: the local model, an OpenAI-compatible API, or the rule-based replier.
    reply_backend: Literal["local", "api", "rules"] = "local"
    # Any OpenAI-compatible chat API (OpenRouter, OpenAI, Gemini's compatible endpoint, Ollama,
    # a llama.cpp server) when reply_backend is "api": the API root, e.g. http://localhost:11434/v1
    reply_api_base_url: str | None = None
    reply_api_key: SecretStr | None = None
    reply_api_model: str | None = None
    reply_api_timeout_s: float = 15.0
    reply_api_retries: int = 1
    # Any local transformers causal-LM or seq2seq (Flan-T5) directory, plus an optional peft LoRA
    # adapter directory merged into it on load. The packaged SmolLM2 comes with Heartline's own
    # adapter (models/reply_adapter); "none" runs it as it comes.
    reply_model_dir: Path | None = Field(default=None, description="default: packaged SmolLM2-135M")
    reply_adapter_dir: Literal["none"] | Path | None = Field(
        default=None, description="default: Heartline's adapter for the packaged model")
    # "onnx": onnxruntime-genai, int4 (a causal LM on the CPU; built once into the model cache);
    # "transformers": torch (the GPU path, and seq2seq models); "auto" picks by device and model.
    reply_runtime: Literal["auto", "onnx", "transformers"] = "auto"
    # The longest reply the local model may write, in tokens.
    reply_max_new_tokens: int = 60
    # 0.4 against 0.7 on the reply corpus's dev split: 97.5 % of replies acknowledged against
    # 95 %, a third fewer regenerations.
    reply_temperature: float = 0.4
    # Seeds the onnx runtime's sampling, so an evaluation can be rerun to the same figures; unset,
    # every reply draws afresh.
    reply_seed: int | None = None
    # Replies tried before the rule-based one stands in, when a reply fails its checks.
    reply_candidates: int = 3
    # Longer replies are cut to this many sentences and characters: they are spoken aloud.
    reply_max_sentences: int = 3
    reply_max_chars: int = 400
    # Production backends load from the model cache, filled by `heartline models fetch`.
    # "goemotions": a transformers multi-label classifier from text_emotion_model_dir, else the
    # model cache's goemotions folder (`heartline models fetch --text-emotion goemotions`);
    # "trained-head" with text_emotion_model_dir: a head from `heartline train text-emotion`.
    text_emotion_backend: Literal["trained-head", "goemotions"] = "trained-head"
    text_emotion_model_dir: Path | None = None
    # Faces: the packaged FER mini-Xception, or DeepFace from the model cache. Toxicity: the
    # packaged profanity check, or Detoxify from the model cache (detoxify_model names which).
    face_backend: Literal["fer", "deepface"] = "fer"
    # A network from `heartline train face-emotion --out DIR` in place of FER's own (backend fer).
    face_model_dir: Path | None = None
    toxicity_backend: Literal["profanity", "detoxify"] = "profanity"
    detoxify_model: Literal["original", "unbiased", "multilingual"] = "original"
    # Emotion from the sound of a voice note (pitch, loudness, tempo, pauses), or not at all.
    voice_emotion_backend: Literal["prosody", "none"] = "prosody"
    # A model from `heartline train voice-emotion --out DIR` in place of the packaged one.
    voice_emotion_model_dir: Path | None = None
    # Spoken replies with Piper, or text only.
    tts_backend: Literal["piper", "none"] = "piper"
    # Registered voices: XTTS-v2 when its weights are in the model cache and COQUI_TOS_AGREED=1
    # ("auto"), else the offline converter; or force one.
    voice_cloning: Literal["auto", "offline", "xtts"] = "auto"
    piper_voice: Path | None = Field(default=None, description="default: packaged en_US joe")
    # How strongly the reply's voice follows the emotion (0: flat delivery).
    expressiveness: float = 1.0

    # Message text, audio and tokens are never logged at INFO.
    log_level: str = "INFO"
    # "json": one JSON object per line (time, level, logger, message), for a log collector.
    log_format: Literal["text", "json"] = "text"

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        value = value.strip().lower()
        if value == "auto":
            import torch  # only asked for "auto": torch takes a second or two to import

            return "cuda" if torch.cuda.is_available() else "cpu"
        if value == "cpu" or re.fullmatch(r"cuda(:\d+)?", value):
            return value
        raise ValueError("must be auto, cpu, cuda or cuda:N")

    @field_validator("telegram_bot_token", "discord_bot_token", "redis_url", "database_url",
                     "telegram_api_url", "telegram_webhook_url", "telegram_webhook_secret",
                     "discord_api_url", "discord_gateway_url", "reply_api_key", "chroma_url",
                     "reply_model_dir", "reply_adapter_dir", "reply_seed", "admin_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        # `TOKEN=` in a compose file or .env means "not set", not "an empty token".
        return None if value == "" else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        toml = _toml_file()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    @classmethod
    def unknown_environment(cls, environ: Mapping[str, str] = os.environ) -> list[str]:
        """HEARTLINE_* variables that name no setting: most likely typos, worth a warning."""
        known = {f"HEARTLINE_{name.upper()}" for name in cls.model_fields} | {"HEARTLINE_CONFIG_FILE"}
        return sorted(name for name in environ if name.startswith("HEARTLINE_")
                      and name not in known and not name.startswith("HEARTLINE_TEST_"))

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'heartline.db').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    def masked(self) -> dict:
        """The effective settings, safe to print: tokens and passwords hidden."""
        values = self.model_dump(mode="json")
        for key in ("telegram_bot_token", "discord_bot_token", "telegram_webhook_secret", "reply_api_key",
                    "admin_token"):
            if values[key]:
                values[key] = "********"
        for key in ("database_url", "redis_url"):
            values[key] = _mask_url_password(values[key])
        values["database_url (effective)"] = _mask_url_password(self.sqlalchemy_url)
        return values


def _mask_url_password(url: str | None) -> str | None:
    if not url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "********"
