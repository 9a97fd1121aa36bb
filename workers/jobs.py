"""The job functions every queue runs. The pipeline (and its models) is built once per process."""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from config import wiring
from config.settings import Settings
from core.delivery import DIRECT, Envelope, Outgoing, VoiceNote
from core.errors import InputError
from core.pipeline import Pipeline
from core.turn import Turn, VoiceProfile
from storage.outbox import Outbox
from storage.users import UserStore
from workers import monitoring, progress

log = logging.getLogger(__name__)

STALE = ("Sorry, I was too busy to answer that in time. If it still matters, please send it "
         "again.")
MIN_CLIPS, MAX_CLIPS = 2, 5  # voice notes for /voice train
FAILED = "Something went wrong on my side (error id {error_id}). Please try again in a moment."

_settings: Settings | None = None
_pipeline: Pipeline | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> None:
    """Run this process's jobs with the settings it was started with (the worker's, or the
    bot's for its embedded queue). Called before the first job; the pipeline is built once."""
    global _settings
    with _lock:
        if _pipeline is None:
            _settings = settings


def current_settings() -> Settings:
    """The settings the pipeline is built with, for every store a job opens too."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings()
        return _settings


def current_pipeline() -> Pipeline:
    global _pipeline
    settings = current_settings()
    with _lock:
        if _pipeline is None:
            _pipeline = wiring.build_pipeline(settings)
        return _pipeline


def current_outbox() -> Outbox:
    return wiring.outbox(current_settings())


def process_turn(turn: Turn) -> dict:
    """One turn through the pipeline, its answer written to the outbox exactly once.

    A user error (corrupt audio, not an image...) is an answer, not a failure: the user is told
    what was wrong, and it comes back as {"error": {...}} so the queue does not retry what can
    never succeed. Any other error is raised for the queue to retry; `answer_failed` answers
    after the last try.
    """
    outbox = current_outbox()
    key = turn_key(turn)
    if key and outbox.has(key):
        log.info("turn %s already answered; not run again", key)
        monitoring.TURNS.labels(turn.platform, "repeated").inc()
        return {"answered": key}
    if turn.received_at:
        waited = time.time() - turn.received_at
        monitoring.QUEUE_WAIT.observe(waited)
        if waited > current_settings().answer_within_s:
            log.warning("turn %s waited too long for a worker; told the user to send it again", key)
            _deliver(outbox, turn, Outgoing(text=STALE, problem="internal"))
            monitoring.TURNS.labels(turn.platform, "stale").inc()
            return {"error": {"kind": "stale", "message": STALE}}
    try:
        result = current_pipeline().run(turn)
    except InputError as error:
        log.info("turn from %s refused: %s", turn.platform, error)
        _deliver(outbox, turn, Outgoing(text=str(error), problem="input"))
        monitoring.TURNS.labels(turn.platform, "refused").inc()
        return {"error": {"kind": "input", "message": str(error)}}
    _observe(turn, result)
    audio = result.reply_audio
    voice = (VoiceNote(audio.data, audio.duration_s, base64.b64decode(audio.waveform))
             if audio else None)
    if audio:  # counted where it is known, against the user's daily voice quota
        _quotas().add(turn.user_key, "voice_seconds", audio.duration_s)
    answer = result.to_dict()
    _deliver(outbox, turn, Outgoing(text=result.response, voice=voice, result=answer))
    _moderate(turn, result.safety.input_flags)  # after the answer: the user hears it first
    return answer


CRISIS_ALERT = ("Heartline: {user} wrote words that read as self-harm ({at}). They got a caring "
                "reply pointing them to people they trust and emergency services. If you can, "
                "check on them. /admin user {user}")
THREAT_ALERT = ("Heartline: {user} wrote words that read as a threat ({at}) and is muted until "
                "{until}. /admin flagged to review it, /admin unban {user} to lift the mute.")


def _moderate(turn: Turn, flags: list[str]) -> None:
    """A flagged threat mutes its sender for a while; self-harm and threats reach the admins,
    as a DM on each admin's platform, with who and when and never what was said."""
    from storage.moderation import Moderation

    settings = current_settings()
    crisis, threat = "self_harm" in flags, "threat" in flags and settings.threat_mute_hours > 0
    source = envelope_of(turn)
    if not (crisis or threat) or source is None:
        return
    at = datetime.now(timezone.utc)
    words = dict(user=turn.user_key, at=f"{at:%d %b %H:%M} UTC")
    if crisis:
        alert = CRISIS_ALERT.format(**words)
    else:
        moderation = Moderation(wiring.open_storage(settings).sessions)
        until = moderation.mute("heartline", turn.user_key, timedelta(hours=settings.threat_mute_hours),
                                "a message flagged as a threat")
        alert = THREAT_ALERT.format(**words, until=f"{until:%d %b %H:%M} UTC")
    log.warning("a %s message flagged %s; telling %d admin(s)", turn.platform,
                "self-harm" if crisis else "a threat", len(settings.admins))
    outbox, key = current_outbox(), source.key
    for admin in settings.admins:
        platform, _, admin_id = admin.partition(":")
        if platform == "web":  # a web chat session is no one to message later
            continue
        envelope = Envelope(platform, DIRECT + admin_id, "", admin)
        outbox.put(replace(envelope.answer(Outgoing(text=alert)), key=f"{key}:alert:{admin}"))


def _observe(turn: Turn, result) -> None:
    monitoring.TURNS.labels(turn.platform, "answered").inc()
    for stage, seconds in result.metadata.stage_times.items():
        monitoring.STAGE_SECONDS.labels(stage).observe(seconds)
    if result.safety.action == "flagged_input":
        monitoring.FLAGGED.labels(turn.platform).inc()


def pipeline_loaded() -> bool:
    """Whether this process has its models (a worker is ready only then)."""
    return _pipeline is not None


def envelope_of(turn: Turn) -> Envelope | None:
    """Where the turn's answer goes; None for a turn with no platform message (the bench)."""
    if not turn.message_id:
        return None
    return Envelope(turn.platform, turn.chat_id, turn.message_id, turn.user_key, turn.in_group)


def turn_key(turn: Turn) -> str | None:
    envelope = envelope_of(turn)
    return envelope.key if envelope else None


def _deliver(outbox: Outbox, turn: Turn, reply: Outgoing) -> None:
    envelope = envelope_of(turn)
    if envelope is not None:
        outbox.put(envelope.answer(reply))


def check_voice_clip(audio: bytes, mime_type: str | None) -> dict:
    """One /voice train clip: decoded, checked, loudness-normalised and transcribed.

    Returns {"wav", "transcript", "seconds"}, or {"error": ...} saying what to record instead.
    """
    from models.voice.clips import check_clip

    pipeline = current_pipeline()
    stages = pipeline.stages
    try:
        decoded = stages.codec.decode(audio, mime_type, pipeline.settings.max_audio_seconds)
        checked = check_clip(decoded)
    except InputError as error:
        return {"error": {"kind": "input", "message": str(error)}}
    transcript = stages.transcriber.transcribe(checked.audio).text
    return {"wav": stages.codec.encode_wav(checked.audio), "transcript": transcript,
            "seconds": round(checked.audio.duration_s, 2)}


def register_voice(user_key: str, clips: list[tuple[bytes, str]], consented_at: datetime,
                   starting: Callable[[str, float], None] | None = None) -> dict:
    """Make the user's voice profile from their checked clips (WAV bytes and transcripts).
    `starting(what, seconds)` hears what it will do and about how long that takes, once the
    clips passed their checks; its steps go to `workers.progress` as they are done."""
    from models.voice.stock_voices import fit_user_voice, fitting_plan, reply_voices
    from models.voice.clips import check_one_speaker
    from storage.voices import VoiceProfileStore

    pipeline, settings = current_pipeline(), current_settings()
    audio = [pipeline.stages.codec.decode(wav, "audio/wav", pipeline.settings.max_audio_seconds)
             for wav, _ in clips]
    transcripts = [text for _, text in clips]
    encoder = wiring.speaker_encoder(settings)
    embeddings = [encoder.embed(clip) for clip in audio]
    try:
        check_one_speaker(embeddings)
    except InputError as error:
        return {"error": {"kind": "input", "message": str(error)}}
    candidates = reply_voices()
    if starting is not None:
        compare, seconds = fitting_plan(candidates, encoder, settings.models_dir)
        what = (f"comparing it with {len(compare)} stock voices, then fitting the nearest to yours"
                if compare else "fitting the nearest stock voice to yours")
        starting(what, seconds)
    conversion = fit_user_voice(audio, transcripts, encoder, candidates, cache_dir=settings.models_dir,
                                progress=progress.report)
    engine = pipeline.stages.synthesizer.engine_for(VoiceProfile(user_key, (), conversion=conversion))
    voice = sum(embeddings) / len(embeddings)
    storage = wiring.open_storage(settings)
    VoiceProfileStore(storage.sessions).save(
        user_key, [wav for wav, _ in clips], transcripts, model_name=engine,
        embedding=[round(float(x), 6) for x in voice], conversion=conversion,
        consented_at=consented_at)
    log.info("registered a voice from %d clips (%s)", len(clips), engine)
    return {"clips": len(clips), "engine": engine}


def set_custom_persona(user_key: str, description: str) -> dict:
    """Make the role the user described their persona, if it passes the same safety check as
    any message: a persona is part of every prompt, so it must not smuggle in abuse."""
    from core import moderation

    pipeline = current_pipeline()
    verdict = moderation.judge(pipeline.toxicity_scores(description), pipeline.settings.toxicity_threshold)
    if verdict.harmful:
        log.info("refused a custom persona (%s)", ", ".join(verdict.reasons))
        return {"error": {"kind": "input", "message": "I can't take on that role. Describe a kind one?"}}
    _users().update(user_key, persona="custom", custom_persona=description)
    return {"persona": "custom"}


def forget_user(user_key: str) -> dict:
    """Everything the user said, gone: messages, reply audio, semantic memory and Heartline's
    mood with them. Their registered voice stays; /voice delete removes that."""
    current_pipeline().stages.memory.forget(user_key)
    _users().forget(user_key)
    return {"forgotten": user_key.partition(":")[0]}


def forget_everything(user_key: str, actor: str) -> dict:
    """An admin's /admin forget: the conversation and memories, Heartline's mood, the persona,
    the registered voice and the flags on what they said. The audit keeps that it was done and
    by whom, nothing of what was forgotten."""
    from storage.moderation import Moderation
    from storage.voices import VoiceProfileStore

    sessions = wiring.open_storage(current_settings()).sessions
    current_pipeline().stages.memory.forget(user_key)
    _users().forget(user_key, everything=True)
    VoiceProfileStore(sessions).delete(user_key)
    Moderation(sessions).record(actor, "forget", user_key)
    log.info("forgot everything of a %s user, as an admin asked", user_key.partition(":")[0])
    return {"forgotten": user_key}


# -- commands that need a worker: each answers its chat message through the outbox ------------

FORGOTTEN = ("Done: I've deleted our conversation and my voice replies. Your registered voice, if "
             "any, stays until you say /voice delete.")


def chat_custom_persona(envelope: Envelope, description: str) -> None:
    done = set_custom_persona(envelope.user_key, description)
    if "error" in done:
        _answer(envelope, done["error"]["message"], problem="input")
    else:
        _answer(envelope, f"Okay, from now on I'll be: {description}")


def chat_forget(envelope: Envelope) -> None:
    forget_user(envelope.user_key)
    _answer(envelope, FORGOTTEN)


def chat_admin_forget(envelope: Envelope, user_key: str) -> None:
    forget_everything(user_key, envelope.user_key)
    _answer(envelope, f"Done: I've deleted everything {user_key} gave me (conversation, memories, "
                      "persona and voice). Their warnings and bans stay.")


def chat_voice_clip(envelope: Envelope, audio: bytes, mime_type: str | None) -> None:
    """A /voice train clip: checked, and kept until /voice done."""
    if current_outbox().has(envelope.key):  # run again after it answered: keep the clip once
        return
    clip = check_voice_clip(audio, mime_type)
    if "error" in clip:
        _answer(envelope, clip["error"]["message"], problem="input")
        return
    users = _users()
    if users.prefs(envelope.user_key).training_since is None:  # /voice cancel came first
        _answer(envelope, "I didn't keep that clip: voice training was stopped. Say /voice train "
                          "to start again.")
        return
    count = users.add_pending_clip(envelope.user_key, clip["wav"], clip["transcript"])
    more = "Send another, or say /voice done." if count >= MIN_CLIPS else "Send another one."
    _answer(envelope, f"Got clip {count} ({clip['seconds']:.0f} s). {more}")


LEARNING_NOW = "Learning your voice now: {what}. That takes {about}; I'll tell you when it's done."


def about(seconds: float) -> str:
    """"about a minute", "about 3 minutes": a wait as a person would say it."""
    minutes = round(seconds / 60)
    return "under a minute" if minutes < 1 else "about a minute" if minutes == 1 else f"about {minutes} minutes"


def chat_register_voice(envelope: Envelope, consented_at: datetime) -> None:
    """/voice done: the voice learned from the clips kept since /voice train."""
    if current_outbox().has(envelope.key):
        return
    users = _users()
    clips = users.pending_clips(envelope.user_key)
    if len(clips) < MIN_CLIPS:
        _answer(envelope, f"I need at least {MIN_CLIPS} clips; I have {len(clips)}. "
                          "Send another voice note.", problem="input")
        return
    def starting(what: str, seconds: float) -> None:  # said before the minutes of work, not after
        current_outbox().put(replace(envelope.answer(Outgoing(text=LEARNING_NOW.format(
            what=what, about=about(seconds)))), key=f"{envelope.key}:learning"))

    profile = register_voice(envelope.user_key, clips, consented_at, starting)
    if "error" in profile:
        _answer(envelope, profile["error"]["message"], problem="input")
        return
    users.stop_training(envelope.user_key)
    _answer(envelope, f"Thank you! I've learned your voice from {profile['clips']} clips. From now "
                      f"on I'll answer in {voice_words(profile['engine'])}. /voice delete removes "
                      "it at any time.")


def answer_failed(what: Turn | Envelope, *_args) -> None:
    """A job's last try failed: the user hears that, rather than nothing."""
    error_id = uuid.uuid4().hex[:8]
    envelope = what if isinstance(what, Envelope) else envelope_of(what)
    log.error("job %s failed for good (error id %s)", envelope.key if envelope else "-", error_id)
    if isinstance(what, Turn):
        monitoring.TURNS.labels(what.platform, "failed").inc()
    if envelope is not None:
        current_outbox().put(envelope.answer(
            Outgoing(text=FAILED.format(error_id=error_id), problem="internal")))


def voice_words(engine: str) -> str:
    """Honest words for what speaks: offline conversion styles a voice, it does not clone it."""
    return "a voice styled on yours" if engine.startswith("world-vc") else "your cloned voice"


def _answer(envelope: Envelope, text: str, problem: str | None = None) -> None:
    current_outbox().put(envelope.answer(Outgoing(text=text, problem=problem)))


def _quotas():
    return wiring.quotas(current_settings())


def _users() -> UserStore:
    return UserStore(wiring.open_storage(current_settings()).sessions)
