"""The Telegram front door on aiogram (HEARTLINE_TELEGRAM_LIBRARY=aiogram)."""

from __future__ import annotations

from bots.sender import Fault
from bots.telegram import COMMANDS, TelegramDoor


class AiogramTelegram(TelegramDoor):
    async def connect(self) -> tuple[int, str]:
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer
        from aiogram.types import BotCommand

        s = self.settings
        session = (AiohttpSession(api=TelegramAPIServer.from_base(s.telegram_api_url))
                   if s.telegram_api_url else None)
        self.bot = Bot(s.telegram_bot_token.get_secret_value(), session=session)
        me = await self.bot.get_me()
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in COMMANDS])
        return me.id, me.username

    async def close(self) -> None:
        await self.bot.session.close()

    async def get_updates(self, offset, timeout):
        # The request must outlive the long poll it carries.
        updates = await self.bot.get_updates(offset=offset, timeout=timeout,
                                             allowed_updates=["message"], request_timeout=timeout + 10)
        return [(update.update_id, update.message) for update in updates]

    def parse_update(self, data):
        from aiogram.types import Update

        return Update.model_validate(data, context={"bot": self.bot}).message

    async def set_webhook(self, url, secret) -> None:
        if url is None:
            await self.bot.delete_webhook()
        else:
            await self.bot.set_webhook(url, secret_token=secret, allowed_updates=["message"])

    async def download(self, file_id: str) -> bytes:
        file = await self.bot.get_file(file_id)
        return (await self.bot.download_file(file.file_path)).read()

    async def send_voice(self, chat_id, ogg, duration, caption, reply_to) -> None:
        from aiogram.types import BufferedInputFile

        await self.bot.send_voice(chat_id, BufferedInputFile(ogg, "reply.ogg"), duration=duration,
                                  caption=caption, reply_parameters=_reply(reply_to))

    async def send_text(self, chat_id, text, reply_to) -> None:
        await self.bot.send_message(chat_id, text, reply_parameters=_reply(reply_to))

    async def chat_action(self, chat_id, action) -> None:
        await self.bot.send_chat_action(chat_id, action)

    def fault(self, error: Exception) -> Fault:
        from aiogram.exceptions import (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNotFound,
            TelegramRetryAfter,
            TelegramUnauthorizedError,
        )

        if isinstance(error, TelegramRetryAfter):
            return Fault(retry_after=float(error.retry_after))
        if isinstance(error, TelegramBadRequest):
            # e.g. VOICE_MESSAGES_FORBIDDEN (the user's privacy settings): words may still go
            return Fault(voice_refused=True, permanent=True)
        if isinstance(error, (TelegramForbiddenError, TelegramNotFound, TelegramUnauthorizedError)):
            return Fault(permanent=True)
        return Fault()  # timeouts, 5xx, a network that is away: worth another try


def _reply(message_id: int | None):
    from aiogram.types import ReplyParameters

    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True) if message_id else None
