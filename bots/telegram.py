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

from bots.chat import UNSUPPORTED, Chat, Incoming, Outgoing, too_large
from config.settings import Settings

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
SEND_ATTEMPTS = 3


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

    # What each library provides.
    async def download(self, file_id: str) -> bytes: ...

    async def send_voice(self, chat_id: str, ogg: bytes, duration: int, caption: str | None,
                         reply_to: int | None) -> None: ...

    async def send_text(self, chat_id: str, text: str, reply_to: int | None) -> None: ...

    async def chat_action(self, chat_id: str, action: str) -> None: ...

    def retry_after(self, error: Exception) -> float | None:
        """Seconds to wait if `error` is the library's 429 (RetryAfter), else None."""

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
        reply_to = None if incoming.private else message.message_id
        if file is None and not incoming.text:
            await self._send(incoming.chat_id, [Outgoing(text=UNSUPPORTED)], reply_to)
            return
        refusal = too_large(file.size, self.settings) if file else None
        if refusal:
            await self._send(incoming.chat_id, [refusal], reply_to)
            return
        async with self._showing("record_voice", incoming.chat_id):
            if file is not None:
                data = await self.download(file.file_id)
                incoming = (replace(incoming, audio=data, audio_mime=file.mime) if file.kind == "audio"
                            else replace(incoming, image=data))
            replies = await self.chat.handle(incoming)
        await self._send(incoming.chat_id, replies, reply_to)

    async def _send(self, chat_id: str, replies: list[Outgoing], reply_to: int | None) -> None:
        for reply in replies:
            text = reply.text or ""
            if reply.voice is None:
                await self._retrying(lambda: self.send_text(chat_id, text, reply_to))
                continue
            mode = self.settings.reply_text
            caption = text if mode == "caption" and len(text) <= CAPTION_LIMIT else None
            duration = max(1, round(reply.voice.duration_s))
            await self._retrying(
                lambda: self.send_voice(chat_id, reply.voice.ogg, duration, caption, reply_to))
            if text and caption is None and mode != "none":
                await self._retrying(lambda: self.send_text(chat_id, text, reply_to))

    async def _retrying(self, send) -> None:
        for attempt in range(SEND_ATTEMPTS):
            try:
                return await send()
            except Exception as error:
                delay = self.retry_after(error)
                if delay is None or attempt == SEND_ATTEMPTS - 1:
                    raise
                log.warning("Telegram asked us to wait %.1f s before sending", delay)
                await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def _showing(self, action: str, chat_id: str):
        """Keep the chat action visible while the reply is being made."""

        async def keep_showing():
            while True:
                with contextlib.suppress(Exception):  # a lost chat action is only cosmetic
                    await self.chat_action(chat_id, action)
                await asyncio.sleep(CHAT_ACTION_EVERY)

        task = asyncio.create_task(keep_showing())
        try:
            yield
        finally:
            task.cancel()


def make_telegram_door(settings: Settings, chat: Chat) -> TelegramDoor:
    if settings.telegram_library == "aiogram":
        from bots.telegram_aiogram import AiogramTelegram

        return AiogramTelegram(settings, chat)
    from bots.telegram_ptb import PtbTelegram

    return PtbTelegram(settings, chat)
