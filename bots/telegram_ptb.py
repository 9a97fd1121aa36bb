"""The Telegram front door on python-telegram-bot (the default library)."""

from __future__ import annotations

import datetime

from bots.sender import Fault
from bots.telegram import COMMANDS, TelegramDoor


class PtbTelegram(TelegramDoor):
    async def connect(self) -> tuple[int, str]:
        from telegram import Bot

        s = self.settings
        urls = ({"base_url": f"{s.telegram_api_url}/bot", "base_file_url": f"{s.telegram_api_url}/file/bot"}
                if s.telegram_api_url else {})
        self.bot = Bot(s.telegram_bot_token.get_secret_value(), **urls)
        await self.bot.initialize()  # getMe
        await self.bot.set_my_commands(COMMANDS)
        return self.bot.id, self.bot.username

    async def close(self) -> None:
        await self.bot.shutdown()

    async def get_updates(self, offset, timeout):
        updates = await self.bot.get_updates(offset=offset, timeout=timeout, allowed_updates=["message"])
        return [(update.update_id, update.message) for update in updates]

    def parse_update(self, data):
        from telegram import Update

        return Update.de_json(data, self.bot).message

    async def set_webhook(self, url, secret) -> None:
        if url is None:
            await self.bot.delete_webhook()
        else:
            await self.bot.set_webhook(url, secret_token=secret, allowed_updates=["message"])

    async def download(self, file_id: str) -> bytes:
        # File.file_path is a URL containing the bot token: never log it.
        file = await self.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    async def send_voice(self, chat_id, ogg, duration, caption, reply_to) -> None:
        await self.bot.send_voice(chat_id, voice=ogg, duration=duration, caption=caption,
                                  reply_parameters=_reply(reply_to))

    async def send_text(self, chat_id, text, reply_to) -> None:
        await self.bot.send_message(chat_id, text, reply_parameters=_reply(reply_to))

    async def chat_action(self, chat_id, action) -> None:
        await self.bot.send_chat_action(chat_id, action)

    def fault(self, error: Exception) -> Fault:
        from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter

        if isinstance(error, RetryAfter):
            delay = error.retry_after
            return Fault(retry_after=delay.total_seconds() if isinstance(delay, datetime.timedelta)
                         else float(delay))
        if isinstance(error, BadRequest):  # before NetworkError, which PTB makes it a kind of
            # e.g. VOICE_MESSAGES_FORBIDDEN (the user's privacy settings): words may still go
            return Fault(voice_refused=True, permanent=True)
        if isinstance(error, (Forbidden, InvalidToken)):
            return Fault(permanent=True)
        return Fault()  # timeouts, 5xx, a network that is away: worth another try


def _reply(message_id: int | None):
    from telegram import ReplyParameters

    return ReplyParameters(message_id, allow_sending_without_reply=True) if message_id else None
