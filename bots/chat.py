"""What every front door shares: who may talk, commands, voice registration, turns, and the
words Heartline says when something is not right.

Adapters turn a platform message into an `Incoming` (files already downloaded), call
`Chat.handle`, and send back what it answers at once (commands, refusals) in their platform's
way. A turn's answer is made by a worker and reaches the door's sender through the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from bots import admin
from config.settings import Settings
from core.delivery import Envelope, Outgoing, message_key
from core.errors import InputError, text_too_long
from core.mood import ADJECTIVE, RESTING
from core.personas import CUSTOM, CUSTOM_PERSONA_CHARS, persona_names
from core.turn import Turn, clean_text
from storage.gate import Gate
from storage.moderation import Moderation, Restriction
from storage.outbox import Outbox
from storage.quotas import Quotas, seconds_to_midnight
from storage.users import UserPrefs, UserStore
from storage.voices import VoiceProfileStore
from workers import jobs, monitoring
from workers.jobs import MAX_CLIPS, MIN_CLIPS
from workers.queues import JobFailed, JobQueue, QueueFull, submit_turn

log = logging.getLogger(__name__)


WELCOME = (
    "Hi, I'm Heartline. Talk to me by text or voice note, or send a selfie, and I'll answer "
    "with my voice. /help shows what else I can do; /privacy says what I keep."
)
HELP = """I understand text, voice notes, audio files and photos. Commands:
/persona assistant|friend|tutor - how I talk with you
/persona custom <who I should be> - a role in your own words
/voice train - teach me your voice (2-5 short voice notes of you speaking)
/voice done, /voice cancel - finish or stop teaching
/voice status, /voice delete - your registered voice
/voice on|off - voice replies or text only
/mood - how I feel with you, and how you've seemed lately
/forget - delete our conversation and my mood (your voice stays until /voice delete)
/privacy - what I keep and how to delete it"""
PRIVACY = """What I keep: your messages and my replies (with the emotions I read in them), and, only if you register it, the voice clips you record for /voice train.
What I don't keep: your incoming voice notes and photos after I've answered, and my reply voice notes once they are sent.
/forget deletes our conversation; /voice delete deletes your voice clips and profile. Your voice is only ever learned from clips you record yourself."""
TRAINING_START = (
    f"Let's learn your voice. Send me {MIN_CLIPS} to {MAX_CLIPS} voice notes of you speaking, "
    "3 to 30 seconds each: read something aloud in a quiet place. Record them now (I can't "
    "learn from forwarded audio). Say /voice done when you've sent them (learning takes a "
    "couple of minutes), /voice cancel to stop."
)
ADMIN_ONLY = "Sorry, only this Heartline's admins may use /admin."
NOT_ALLOWED = "Sorry, this Heartline is private and not open to you."
BANNED = "The moderators of this Heartline have closed it to you, so I won't answer any more."
MUTED = "The moderators have paused our conversation until {until}; I'll answer again then."
SLOW_DOWN = "You're sending messages faster than I can answer. Try again in {wait}, please."
LEARNING = "Thank you. I'll learn your voice from these clips, and tell you how long it will take."
OUT_OF_TURNS = ("We've talked a lot today: this Heartline answers {limit} messages a day. I can "
                "answer again in {wait}, at midnight UTC.")
OUT_OF_VOICE = ("I've spoken all of today's voice replies ({spoken}), so I'll answer in "
                "writing until midnight UTC, in {wait}.")
OUT_OF_REGISTRATIONS = ("That's all the voice registrations this Heartline allows in a day ({limit}). "
                        "You can say /voice done again in {wait}, after midnight UTC.")
BUSY = "I'm answering a lot of messages right now. Please try again in a few minutes."
TRAINING_EXPIRED = ("I stopped waiting for voice clips: /voice train was over {minutes} minutes ago, "
                    "so I threw away the clips from then. Say /voice train to start again.")
UNSUPPORTED = "I can read text, voice notes, audio files and photos, but not that kind of message."
NOTHING_TO_READ = "There's nothing in that message I can read. Write to me, or send a voice note or a photo."


@dataclass(frozen=True)
class Incoming:
    """One platform message, files already downloaded."""

    platform: str
    user_id: str
    chat_id: str
    message_id: str
    text: str | None = None
    audio: bytes | None = None
    audio_mime: str | None = None
    image: bytes | None = None
    private: bool = True
    addressed: bool = False  # in a group: the bot was mentioned or replied to
    forwarded: bool = False

    @property
    def user_key(self) -> str:
        return f"{self.platform}:{self.user_id}"


def too_large(size: int | None, settings: Settings) -> Outgoing | None:
    """Refuse a file by its announced size, before downloading it."""
    limit = settings.max_upload_bytes
    if size is not None and size > limit:
        shown = f"{limit / 2**20:.0f} MB" if limit >= 2**20 else f"{limit // 1024} KB"
        return Outgoing(text=f"That file is too large for me (the limit is {shown}).", problem="input")
    return None


class Chat:
    def __init__(self, settings: Settings, queue: JobQueue, users: UserStore,
                 voices: VoiceProfileStore, outbox: Outbox, gate: Gate,
                 moderation: Moderation, quotas: Quotas) -> None:
        self.settings = settings
        self.queue = queue
        self.users = users
        self.voices = voices
        self.outbox = outbox
        self.gate = gate
        self.moderation = moderation
        self.quotas = quotas
        self.desk = admin.AdminDesk(moderation, settings)

    async def handle(self, message: Incoming) -> list[Outgoing]:
        """What to answer now. A turn's answer comes later, through the outbox: its Outgoing
        only says so (`queued`), once the job exists."""
        # Storage and waiting for jobs block; keep the adapter's event loop free.
        return await asyncio.get_running_loop().run_in_executor(None, self._handle, message)

    async def post(self, message: Incoming, replies: list[Outgoing]) -> None:
        """Put what is answered at once (a command's answer, a refusal) into the outbox too, so
        the door's sender delivers it with the same retries as a turn's answer."""
        await asyncio.to_thread(self._post, message, replies)

    def _post(self, message: Incoming, replies: list[Outgoing]) -> None:
        envelope = Envelope(message.platform, message.chat_id, message.message_id,
                            message.user_key, in_group=not message.private)
        for n, reply in enumerate(reply for reply in replies if reply.queued is None):
            # Keyed by the message: a message handled again puts no second copy.
            self.outbox.put(replace(envelope.answer(reply), key=f"{envelope.key}:{n}"))

    def _handle(self, message: Incoming) -> list[Outgoing]:
        key = message_key(message.platform, message.chat_id, message.message_id)
        try:
            if self.gate.seen(key):
                log.info("dropped a redelivered %s message", message.platform)
                return []
            monitoring.MESSAGES.labels(message.platform).inc()
            replies = self._answer(message)
            self.gate.handled(key)
            if any(reply.problem == "input" for reply in replies):
                monitoring.REFUSED.labels(message.platform, "input").inc()
            return replies
        except InputError as error:
            self.gate.handled(key)  # a refusal is its answer: the message again gets no second one
            monitoring.REFUSED.labels(message.platform, "input").inc()
            return [Outgoing(text=str(error), problem="input")]
        except QueueFull:
            log.warning("refused a %s message: the queue is full", message.platform)
            monitoring.REFUSED.labels(message.platform, "busy").inc()
            return [Outgoing(text=BUSY, problem="internal")]
        except Exception as error:
            error_id = uuid.uuid4().hex[:8]
            job = f" (job {error.job_id})" if isinstance(error, JobFailed) else ""
            log.exception("error %s handling a %s message%s", error_id, message.platform, job)
            return [Outgoing(text=f"Something went wrong on my side (error id {error_id}). "
                                  "Please try again in a moment.", problem="internal")]

    def _answer(self, message: Incoming) -> list[Outgoing]:
        if not self.wants(message):
            return []
        if not self._allowed(message):
            log.info("refused a %s user who is not on the allow-list", message.platform)
            return [Outgoing(text=NOT_ALLOWED)]
        prefs = self.users.prefs(message.user_key)
        restricted = self.moderation.restriction(message.user_key, prefs)
        if restricted is not None:
            log.info("no job for a %s %s user", restricted.kind, message.platform)
            monitoring.REFUSED.labels(message.platform, restricted.kind).inc()
            return [Outgoing(text=_restriction_notice(restricted))] if restricted.tell else []
        wait = self.gate.wait_s(message.user_key, prefs.rate_limit)
        if wait:
            monitoring.REFUSED.labels(message.platform, "rate_limited").inc()
            return [Outgoing(text=SLOW_DOWN.format(wait=wait_words(wait)))]
        text = clean_text(message.text)
        if len(text) > self.settings.max_text_chars:
            raise text_too_long(self.settings.max_text_chars)
        refusal = self._unusable_file(message)
        if refusal:
            return [refusal]
        if message.text and not text and message.audio is None and message.image is None:
            return [Outgoing(text=NOTHING_TO_READ, problem="input")]  # only invisible characters
        message = replace(message, text=text or None)
        notices = []
        if prefs.training_since and _older_than(prefs.training_since, self.settings.voice_training_minutes):
            # A user who forgot /voice done must not have every voice note taken as a clip.
            self.users.stop_training(message.user_key)
            prefs = replace(prefs, training_since=None)
            notices.append(Outgoing(text=TRAINING_EXPIRED.format(minutes=self.settings.voice_training_minutes)))
        if text.startswith("/"):
            return notices + self._command(message, text, prefs)
        if prefs.training_since and message.audio:
            return self._training_clip(message)
        return notices + self._turn(message, prefs)

    def wants(self, message: Incoming) -> bool:
        """Whether this message is for Heartline at all; adapters ask before downloading files."""
        return message.private or message.addressed or self.settings.group_replies == "always"

    def _allowed(self, message: Incoming) -> bool:
        users, chats = self.settings.allowed_users, self.settings.allowed_chats
        if not users and not chats:
            return True
        return message.user_key in users or f"{message.platform}:{message.chat_id}" in chats

    # -- turns --------------------------------------------------------------------------

    def _unusable_file(self, message: Incoming) -> Outgoing | None:
        """Refused here, not in a worker: an empty file, or one bigger than the limit however it
        came (a door that could not ask the size first, the web chat's upload)."""
        for data, what in ((message.audio, "audio file"), (message.image, "image")):
            if data is None:
                continue
            if not data:
                return Outgoing(text=f"That {what} is empty.", problem="input")
            refusal = too_large(len(data), self.settings)
            if refusal:
                return refusal
        return None

    def _turn(self, message: Incoming, prefs: UserPrefs) -> list[Outgoing]:
        if message.text is None and message.audio is None and message.image is None:
            return [Outgoing(text=UNSUPPORTED, problem="input")]
        turn = Turn(
            user_id=message.user_id, platform=message.platform, chat_id=message.chat_id,
            text=message.text, audio=message.audio, audio_mime=message.audio_mime,
            image=message.image, message_id=message.message_id, in_group=not message.private,
            received_at=time.time(), want_voice=prefs.voice_replies,
        )
        key, notices = message.user_key, []
        if not self.quotas.take(key, "turns"):
            log.info("refused a %s user past their daily turns", message.platform)
            monitoring.REFUSED.labels(message.platform, "quota_turns").inc()
            return [Outgoing(text=OUT_OF_TURNS.format(limit=self.settings.daily_turns,
                                                      wait=wait_words(seconds_to_midnight())))]
        if turn.want_voice and not self.quotas.voice_left(key):
            monitoring.REFUSED.labels(message.platform, "quota_voice").inc()
            turn = replace(turn, want_voice=False)
            if self.quotas.tell_voice_ran_out(key):
                notices.append(Outgoing(text=OUT_OF_VOICE.format(
                    spoken=wait_words(self.settings.daily_voice_seconds), wait=wait_words(seconds_to_midnight()))))
        # XTTS speaks ~3x slower than real time on a CPU: its turns go to the GPU workers, if any
        # (asked only then: it costs a database read on every message).
        cloned = (bool(self.settings.gpu_queue_name) and turn.want_voice
                  and self.voices.status(key).model_name.startswith("xtts"))
        try:
            handle = submit_turn(self.queue, turn, gpu=cloned)
        except QueueFull:
            self.quotas.give_back(key, "turns")
            raise
        return notices + [Outgoing(queued=handle.job_id)]

    # -- commands -----------------------------------------------------------------------

    def _command(self, message: Incoming, text: str, prefs: UserPrefs) -> list[Outgoing]:
        name, *args = text.split()
        name = name.split("@", 1)[0].lower()  # "/help@heartline_bot" in Telegram groups
        handler = {
            "/start": lambda: WELCOME, "/help": lambda: HELP, "/privacy": lambda: PRIVACY,
            "/persona": lambda: self._persona(message, args, prefs),
            "/mood": lambda: self._mood(message),
            "/forget": lambda: self._forget(message),
            "/voice": lambda: self._voice(message, args, prefs),
            "/admin": lambda: self._admin(message, args),
        }.get(name)
        if handler is None:
            return [Outgoing(text="I don't know that command. /help lists what I understand.")]
        answer = handler()
        return answer if isinstance(answer, list) else [Outgoing(text=answer)]

    def _persona(self, message: Incoming, args: list[str], prefs: UserPrefs) -> str | list[Outgoing]:
        names = persona_names()
        if not args:
            if prefs.persona == CUSTOM:
                return "I'm talking with you in the role you described. /persona friend goes back."
            current = prefs.persona or self.settings.default_persona
            return (f"I'm talking with you as your {current}. Choose one of: {', '.join(names)}, "
                    "or describe me: /persona custom a calm coach who asks good questions.")
        choice = args[0].lower()
        if choice == CUSTOM:
            return self._custom_persona(message, " ".join(args[1:]))
        if choice not in names:
            return f"I can be your {', '.join(names)}, or a role you describe with /persona custom."
        self.users.update(message.user_key, persona=choice)
        return f"Okay, from now on I'm your {choice}."

    def _custom_persona(self, message: Incoming, description: str) -> str | list[Outgoing]:
        if not description:
            return "Tell me who to be, for example: /persona custom a cheerful coach who loves puns."
        if len(description) > CUSTOM_PERSONA_CHARS:
            return f"Please describe me in under {CUSTOM_PERSONA_CHARS} characters."
        return [self._later(message, "custom persona", jobs.chat_custom_persona, description)]

    def _mood(self, message: Incoming) -> str:
        mine = (self.users.bot_mood(message.user_key) or RESTING).words()
        recent = [emotion for emotion, _ in self.users.recent_emotions(message.user_key, 10)]
        if not recent:
            return f"I'm feeling {mine}. We haven't talked enough for me to tell how you are yet."
        main = max(set(recent), key=recent.count)
        return (f"With you I'm feeling {mine}. Over your last {len(recent)} messages you've mostly "
                f"seemed {ADJECTIVE[main]}; most recently {ADJECTIVE[recent[-1]]}.")

    def _admin(self, message: Incoming, args: list[str]) -> str | list[Outgoing]:
        actor = message.user_key
        if actor not in self.settings.admins:
            log.info("refused /admin from a %s user who is not an admin", message.platform)
            self.moderation.record(actor, "refused", None, "not an admin",
                                   {"command": (args or [""])[0][:32]})
            return ADMIN_ONLY
        if not message.private:  # what an admin sees of users is not for the whole group
            return "Admin commands work in a private chat with me."
        try:
            if args[:1] == ["forget"]:
                if len(args) != 2:
                    return "Say /admin forget USER."
                target = admin.user_key(args[1], message.platform)
                return [self._later(message, "admin forget", jobs.chat_admin_forget, target)]
            return self.desk.said(actor, message.platform, args).words
        except admin.AdminError as error:
            return str(error)

    def _forget(self, message: Incoming) -> list[Outgoing]:
        return [self._later(message, "forget", jobs.chat_forget)]

    def _voice(self, message: Incoming, args: list[str], prefs: UserPrefs) -> str | list[Outgoing]:
        action = (args or ["status"])[0].lower()
        key = message.user_key
        if action == "train":
            self.users.start_training(key)
            return TRAINING_START
        if action == "cancel":
            self.users.stop_training(key)
            return "Okay, I've stopped and thrown away the clips from this session."
        if action == "done":
            return self._finish_training(message, prefs)
        if action in ("on", "off"):
            self.users.update(key, voice_replies=action == "on")
            return "I'll answer with my voice." if action == "on" else "I'll answer in text only."
        if action == "delete":
            deleted = self.voices.delete(key)
            return "Your voice clips and profile are deleted." if deleted else "You have no registered voice."
        status = self.voices.status(key)
        if not status.registered:
            return "You haven't registered your voice. Say /voice train to start."
        return (f"Your voice is registered from {status.clips} clips "
                f"({status.created_at:%d %b %Y}); I answer in {jobs.voice_words(status.model_name)}.")

    # -- voice registration --------------------------------------------------------------

    def _training_clip(self, message: Incoming) -> list[Outgoing]:
        if message.forwarded:
            return [Outgoing(text="That one was forwarded. I can only learn your voice from "
                                  "clips you record yourself.")]
        pending = self.users.pending_clips(message.user_key)
        if len(pending) >= MAX_CLIPS:
            return [Outgoing(text=f"I have {MAX_CLIPS} clips already; say /voice done.")]
        return [self._later(message, "voice clip", jobs.chat_voice_clip, message.audio,
                            message.audio_mime)]

    def _finish_training(self, message: Incoming, prefs: UserPrefs) -> str | list[Outgoing]:
        if not prefs.training_since:
            return "Say /voice train first, then send me your voice notes."
        clips = self.users.pending_clips(message.user_key)
        if len(clips) < MIN_CLIPS:
            return f"I need at least {MIN_CLIPS} clips; I have {len(clips)}. Send another voice note."
        if not self.quotas.take(message.user_key, "registrations"):
            monitoring.REFUSED.labels(message.platform, "quota_registrations").inc()
            return OUT_OF_REGISTRATIONS.format(limit=self.settings.daily_voice_registrations,
                                               wait=wait_words(seconds_to_midnight()))
        # Saying /voice done after recording is the user's consent to the voice being learned.
        learning = self._later(message, "voice registration", jobs.chat_register_voice,
                               datetime.now(timezone.utc))
        return [Outgoing(text=LEARNING), learning]

    def _later(self, message: Incoming, what: str, job, *args) -> Outgoing:
        """Run `job(envelope, *args)` on a worker; it answers through the outbox."""
        envelope = Envelope(message.platform, message.chat_id, message.message_id,
                            message.user_key, in_group=not message.private)
        handle = self.queue.submit(job, envelope, *args, job_id=envelope.key,
                                   description=f"{what} from {message.platform}",
                                   on_failure=jobs.answer_failed)
        return Outgoing(queued=handle.job_id)


def wait_words(seconds: int) -> str:
    """"40 s", "12 minutes", "3 hours": how long, as a person would say it."""
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{round(seconds / 3600)} hours"


def _restriction_notice(restricted: Restriction) -> str:
    if restricted.kind == "banned":
        return BANNED
    return MUTED.format(until=f"{restricted.until:%d %b %H:%M} UTC")


def _older_than(moment: datetime, minutes: int) -> bool:
    return datetime.now(timezone.utc) - moment > timedelta(minutes=minutes)


