"""What both Telegram adapters share: reading a message, downloading its file, answering.

python-telegram-bot and aiogram expose the Bot API's own field names, so one reader serves
both; each library module only says how to download, send and poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from bots.chat import UNSUPPORTED, Chat, Incoming, too_large
from bots.sender import Fault, Sender, backoff
from config.settings import Settings
from core.delivery import DIRECT, Delivery, Outgoing, message_key

log = logging.getLogger(__name__)

COMMANDS = [
    ("start", "Say hello"),
    ("help", "What I can do"),
    ("voice", "train | done | cancel | status | delete | on | off"),
    ("persona", "assistant | friend | tutor | custom <who I should be>"),
    ("mood", "How I feel with you, and how you've seemed"),
    ("forget", "Delete our conversation"),
    ("privacy", "What I keep and how to delete it"),
]
CAPTION_LIMIT = 1024  # Telegram's limit for a caption, in characters
CHAT_ACTION_EVERY = 4.5  # seconds; Telegram shows an action for about 5 s
SHOW_ANSWERING_S = 180  # the most a chat shows "recording a voice message" while a worker answers
DOWNLOAD_ATTEMPTS = 3
POLL_TIMEOUT_S = 30
NOT_FETCHED = "I couldn't fetch your file from Telegram. Please send it again."


@dataclass(frozen=True)
class FileRef:
    file_id: str
    size: int | None
    mime: str
    kind: str  # "audio" or "image"


def read_message(message: Any, bot_id: int, bot_username: str) -> tuple[Incoming, FileRef | None] | None:
    """A PTB or aiogram Message as an `Incoming` without file bytes, and the file to fetch.

    None for what is not a person's message (service messages, other bots).
    """
    user = message.from_user
    if user is None or user.is_bot:
        return None
    text = message.text or message.caption
    chat = message.chat
    replied = message.reply_to_message
    addressed = bool(
        (text and f"@{bot_username}".lower() in text.lower())
        or (replied is not None and replied.from_user is not None and replied.from_user.id == bot_id)
    )
    incoming = Incoming(
        platform="telegram", user_id=str(user.id), chat_id=str(chat.id),
        message_id=str(message.message_id), text=text, private=chat.type == "private",
        addressed=addressed, forwarded=message.forward_origin is not None,
    )
    return incoming, _file_of(message)


def _file_of(message: Any) -> FileRef | None:
    if message.voice:
        return FileRef(message.voice.file_id, message.voice.file_size, "audio/ogg", "audio")
    if message.audio:
        return FileRef(message.audio.file_id, message.audio.file_size,
                       message.audio.mime_type or "audio/mpeg", "audio")
    if message.photo:
        largest = message.photo[-1]
        return FileRef(largest.file_id, largest.file_size, "image/jpeg", "image")
    document = message.document
    if document and (document.mime_type or "").split("/")[0] in ("audio", "image"):
        kind = document.mime_type.split("/")[0]
        return FileRef(document.file_id, document.file_size, document.mime_type, kind)
    return None


class TelegramDoor:
    """The library-independent part of a Telegram front door."""

    def __init__(self, settings: Settings, chat: Chat) -> None:
        self.settings = settings
        self.chat = chat
        self.bot_id = 0
        self.bot_username = ""
        self._offset: int | None = None
        self._runner = None
        # Messages being answered: outbox key -> (chat id, until when the chat shows it).
        self._answering: dict[str, tuple[str, float]] = {}
        self._indicator: asyncio.Task | None = None
        self._voice_sent: set[str] = set()  # answers whose voice went and whose words did not yet
        self.sender = Sender("telegram", chat.outbox, self.send_delivery, self.fault,
                             settings.send_attempts, settings.outbox_keep_s)

    # What each library provides.
    async def connect(self) -> tuple[int, str]:
        """Log in; the bot's id and username."""

    async def close(self) -> None: ...

    async def get_updates(self, offset: int | None, timeout: int) -> list[tuple[int, Any]]:
        """(update_id, message or None) for updates after `offset`, waiting up to `timeout` s."""

    def parse_update(self, data: dict) -> Any:
        """The message in a webhook's JSON update, or None."""

    async def set_webhook(self, url: str | None, secret: str | None) -> None:
        """Register the webhook, or (url None) delete it so that polling works."""

    async def download(self, file_id: str) -> bytes: ...

    async def send_voice(self, chat_id: str, ogg: bytes, duration: int, caption: str | None,
                         reply_to: int | None) -> None: ...

    async def send_text(self, chat_id: str, text: str, reply_to: int | None) -> None: ...

    async def chat_action(self, chat_id: str, action: str) -> None: ...

    def fault(self, error: Exception) -> Fault:
        """What the library's exception means for sending again."""

    async def start(self) -> None:
        self.bot_id, self.bot_username = await self.connect()
        s = self.settings
        if s.telegram_webhook_url:
            await self._start_webhook()
        else:
            # A webhook left set makes getUpdates answer 409 forever.
            await self.set_webhook(None, None)
            self._polling = asyncio.create_task(self._poll(), name="heartline-telegram-poll")
        self.sender.start()
        self._indicator = asyncio.create_task(self._show_answering(), name="heartline-telegram-action")
        log.info("Telegram (%s) connected as @%s", s.telegram_library, self.bot_username)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        else:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            if self._offset is not None:  # confirm what was handled, so a restart skips it
                with contextlib.suppress(Exception):
                    await self.get_updates(self._offset, 0)
        if self._indicator is not None:
            self._indicator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._indicator
        await self.sender.stop()
        await self.close()

    async def _poll(self) -> None:
        """Long polling that confirms a batch of updates only after each message in it is
        handled (its job exists): a bot killed mid-batch gets the batch again on restart, and
        the job id makes a redelivered message one job. The libraries' own pollers confirm an
        update as soon as the next poll starts, which can lose it."""
        self._offset, failures = None, 0
        while True:
            try:
                updates = await self.get_updates(self._offset, POLL_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                delay = self.fault(error).retry_after or backoff(failures)
                log.warning("getUpdates failed (%s); polling again in %.1f s", type(error).__name__, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            await asyncio.gather(*(self.on_message(message) for _, message in updates if message))
            if updates:
                self._offset = updates[-1][0] + 1

    async def _start_webhook(self) -> None:
        """Answer Telegram's POST only once the message is handled: a 200 before the job exists
        would tell Telegram to forget a message we may lose."""
        from urllib.parse import urlparse

        from aiohttp import web

        s = self.settings
        secret = s.telegram_webhook_secret.get_secret_value() if s.telegram_webhook_secret else None

        async def receive(request: web.Request) -> web.Response:
            if secret and request.headers.get("X-Telegram-Bot-Api-Secret-Token") != secret:
                return web.Response(status=403)
            try:
                message = self.parse_update(await request.json())
            except Exception:
                log.warning("ignored a webhook update that does not parse")
                return web.Response()
            if message is not None:
                await self.on_message(message)
            return web.Response()

        app = web.Application()
        app.router.add_post(urlparse(s.telegram_webhook_url).path or "/", receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, s.telegram_webhook_host, s.telegram_webhook_port).start()
        await self.set_webhook(s.telegram_webhook_url, secret)

    async def on_message(self, message: Any) -> None:
        try:
            await self._answer(message)
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("error %s answering a Telegram message", error_id)
            with contextlib.suppress(Exception):
                await self.send_text(str(message.chat.id), f"Something went wrong on my side (error id "
                                     f"{error_id}). Please try again in a moment.", None)

    async def _answer(self, message: Any) -> None:
        read = read_message(message, self.bot_id, self.bot_username)
        if read is None or not self.chat.wants(read[0]):
            return
        incoming, file = read
        if file is None and not incoming.text:
            await self.chat.post(incoming, [Outgoing(text=UNSUPPORTED)])
            return
        refusal = too_large(file.size, self.settings) if file else None
        if refusal:
            await self.chat.post(incoming, [refusal])
            return
        key = message_key("telegram", incoming.chat_id, incoming.message_id)
        self._answering[key] = (incoming.chat_id, asyncio.get_running_loop().time() + SHOW_ANSWERING_S)
        with contextlib.suppress(Exception):  # a lost chat action is only cosmetic
            await self.chat_action(incoming.chat_id, "record_voice")
        replies = []
        try:
            if file is not None:
                data = await self._download(file.file_id)
                if data is None:
                    await self.chat.post(incoming, [Outgoing(text=NOT_FETCHED)])
                    return
                incoming = (replace(incoming, audio=data, audio_mime=file.mime) if file.kind == "audio"
                            else replace(incoming, image=data))
            replies = await self.chat.handle(incoming)
        finally:
            if not any(reply.queued == key for reply in replies):
                self._answering.pop(key, None)  # answered at once, or not at all
        await self.chat.post(incoming, replies)

    async def _download(self, file_id: str) -> bytes | None:
        """The file's bytes, retrying Telegram's faults; None once it cannot be had."""
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            try:
                return await self.download(file_id)
            except Exception as error:
                fault = self.fault(error)
                if fault.permanent or attempt == DOWNLOAD_ATTEMPTS:
                    log.warning("could not download a Telegram file: %s", type(error).__name__)
                    return None
                await asyncio.sleep(fault.retry_after or backoff(attempt))
        return None

    async def send_delivery(self, delivery: Delivery, with_voice: bool) -> None:
        """The sender's way out: one answer from the outbox."""
        self._answering.pop(delivery.key, None)
        # A private chat's id is its user's: an admin's alert goes there.
        chat_id, reply, text = delivery.chat_id.removeprefix(DIRECT), delivery.reply, delivery.reply.text or ""
        reply_to = int(delivery.reply_to) if delivery.reply_to else None
        if not with_voice or reply.voice is None:
            if text:
                await self.send_text(chat_id, text, reply_to)
            return
        mode = self.settings.reply_text
        caption = text if mode == "caption" and len(text) <= CAPTION_LIMIT else None
        # Tried again after the words failed, an answer does not send its voice note twice.
        if delivery.key not in self._voice_sent:
            await self.send_voice(chat_id, reply.voice.ogg, max(1, round(reply.voice.duration_s)),
                                  caption, reply_to)
            self._voice_sent.add(delivery.key)
        if text and caption is None and mode != "none":
            await self.send_text(chat_id, text, reply_to)
        self._voice_sent.discard(delivery.key)

    async def _show_answering(self) -> None:
        """While a worker makes an answer the chat shows Heartline recording a voice message, as
        it would show a person recording one. Telegram shows an action for about 5 s, so it is
        sent again until the answer goes (or SHOW_ANSWERING_S passes)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHAT_ACTION_EVERY)
            now = loop.time()
            for key, (_, until) in list(self._answering.items()):
                if until < now:
                    self._answering.pop(key, None)
            for chat_id in {chat_id for chat_id, _ in self._answering.values()}:
                with contextlib.suppress(Exception):
                    await self.chat_action(chat_id, "record_voice")


def make_telegram_door(settings: Settings, chat: Chat) -> TelegramDoor:
    if settings.telegram_library == "aiogram":
        from bots.telegram_aiogram import AiogramTelegram

        return AiogramTelegram(settings, chat)
    from bots.telegram_ptb import PtbTelegram

    return PtbTelegram(settings, chat)
